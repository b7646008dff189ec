// Writing safetensors files byte for byte as huggingface/safetensors (0.8) writes them:
// tensors ordered by dtype alignment, highest first (its enum order: U64 I64 F64 C64 F32 U32 I32
// BF16 F16 U16 I16 … U8 BOOL), then by name (UTF-8 bytes); compact JSON `{"__metadata__":{…},
// name: {"dtype","shape","data_offsets"}, …}` (serde_json's escaping, which JSON.stringify
// shares), padded with spaces to a multiple of 8 bytes so every tensor starts aligned; then the
// data, little-endian, with no gaps. The reference writes metadata keys in a random (hash)
// order; Attune sorts them, so for one key (`{"format":"pt"}`) the bytes are the reference's.

import { writeFileAtomic } from '../../services/atomic-file'
import { arrayTypeOf, compareDtypesForWriting, compareUtf8, dtypeBits, hostIsLittleEndian, isDtype, swapBytes, type Dtype, type TensorArray } from './dtypes'
import { SafetensorsError } from './errors'

export interface TensorToWrite {
  dtype: Dtype
  shape: readonly number[]
  /**
   * The elements: the dtype's own typed array (Float32Array for F32, Uint16Array of bit patterns
   * for F16/BF16 — see convert.ts —, BigInt64Array for I64, Int32Array for I32…), or the raw
   * little-endian bytes as a Uint8Array for any dtype.
   */
  data: TensorArray
}

export type TensorsToWrite = Record<string, TensorToWrite> | ReadonlyMap<string, TensorToWrite>

/** The bytes of a safetensors file holding `tensors` and, when given, `metadata`. */
export function serializeSafetensors(tensors: TensorsToWrite, metadata?: Record<string, string> | null, file = '<bytes>'): Uint8Array {
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)) as [string, TensorToWrite][]
  for (const [name, tensor] of entries) checkTensor(name, tensor, file)
  if (metadata) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string' || !wellFormed(key) || !wellFormed(value)) {
        throw new SafetensorsError('BAD_INPUT', file, `${file}: metadata ${JSON.stringify(key)} must be a well-formed string`)
      }
    }
  }
  entries.sort(([a, x], [b, y]) => compareDtypesForWriting(x.dtype, y.dtype) || compareUtf8(a, b))

  const parts: string[] = []
  if (metadata) {
    const keys = Object.keys(metadata).sort(compareUtf8)
    parts.push(`"__metadata__":{${keys.map((key) => `${JSON.stringify(key)}:${JSON.stringify(metadata[key])}`).join(',')}}`)
  }
  let offset = 0
  for (const [name, tensor] of entries) {
    const end = offset + tensor.data.byteLength
    parts.push(`${JSON.stringify(name)}:{"dtype":"${tensor.dtype}","shape":[${tensor.shape.join(',')}],"data_offsets":[${offset},${end}]}`)
    offset = end
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`)
  const headerLength = Math.ceil(json.length / 8) * 8

  const out = new Uint8Array(8 + headerLength + offset)
  const view = new DataView(out.buffer)
  view.setUint32(0, headerLength, true)
  view.setUint32(4, 0, true)
  out.set(json, 8)
  out.fill(0x20, 8 + json.length, 8 + headerLength)
  let position = 8 + headerLength
  for (const [, tensor] of entries) {
    const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength)
    out.set(bytes, position)
    if (!hostIsLittleEndian && tensor.data.BYTES_PER_ELEMENT > 1) swapBytes(out.subarray(position, position + bytes.length), tensor.data.BYTES_PER_ELEMENT)
    position += bytes.length
  }
  return out
}

/** Writes a safetensors file atomically (services/atomic-file.ts): the old file stays until the new one is complete. */
export async function writeSafetensorsFile(path: string, tensors: TensorsToWrite, metadata?: Record<string, string> | null): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata, path))
}

/** The byte length of a tensor of this dtype and shape (whole bytes for the packed types). */
export function tensorByteLength(dtype: Dtype, shape: readonly number[]): number {
  const bits = shape.reduce((n, size) => n * size, 1) * dtypeBits[dtype]
  return Math.ceil(bits / 8)
}

function checkTensor(name: string, tensor: TensorToWrite, file: string): void {
  const fail = (what: string): never => {
    throw new SafetensorsError('BAD_INPUT', file, `${file}: tensor ${JSON.stringify(name)}: ${what}`, name)
  }
  if (name === '__metadata__') fail('the name __metadata__ is reserved for the metadata')
  if (!wellFormed(name)) fail('the name is not a well-formed Unicode string')
  if (!isDtype(tensor.dtype)) fail(`unknown dtype ${JSON.stringify(tensor.dtype)}`)
  if (!Array.isArray(tensor.shape) || !tensor.shape.every((size) => Number.isSafeInteger(size) && size >= 0)) {
    fail(`shape ${JSON.stringify(tensor.shape)} is not a list of non-negative integers`)
  }
  const data = tensor.data as unknown
  if (!ArrayBuffer.isView(data) || data instanceof DataView) fail('data must be a typed array or a Uint8Array of bytes')
  const array = data as TensorArray
  if (!(array instanceof Uint8Array) && array.constructor !== arrayTypeOf(tensor.dtype)) {
    fail(`${array.constructor.name} does not hold ${tensor.dtype} elements (use ${arrayTypeOf(tensor.dtype).name}, or the raw bytes as a Uint8Array)`)
  }
  const elements = tensor.shape.reduce((n, size) => n * size, 1)
  const bits = elements * dtypeBits[tensor.dtype]
  if (!Number.isSafeInteger(bits) || bits % 8 !== 0) fail(`${elements} elements of ${tensor.dtype} do not fill whole bytes`)
  if (array.byteLength !== bits / 8) fail(`shape [${tensor.shape.join(', ')}] of ${tensor.dtype} needs ${bits / 8} bytes but the data has ${array.byteLength}`)
}

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

function wellFormed(text: string): boolean {
  return typeof text === 'string' && !loneSurrogate.test(text)
}
