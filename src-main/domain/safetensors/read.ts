// Reading safetensors files (reference.md, "Models"): an 8-byte little-endian header length N,
// N bytes of UTF-8 JSON ({name: {dtype, shape, data_offsets: [begin, end)}}, optional
// `__metadata__` string map), then the tensors' bytes, row-major and little-endian, with no holes.
//
// Everything is validated before any tensor is handed out, as huggingface/safetensors does and a
// little more: header length (≤ 100,000,000 bytes, inside the file), UTF-8, a JSON object,
// `__metadata__` a map of strings, every dtype known, every shape a list of non-negative integers,
// offsets inside the data section, tensors neither overlapping nor leaving holes, shape × dtype
// size = byte length, and the data section ending with the last tensor. Any failure is a
// SafetensorsError naming the file and the tensor; nothing else is thrown for any input bytes.
//
// Differences from the reference reader, all deliberate: JSON numbers are parsed by JSON.parse,
// so `1.0` is accepted as the integer 1 and integers above 2^53 are refused (no real tensor comes
// near); like the reference, unknown fields inside a tensor's entry are ignored, a JSON object with
// a repeated name keeps the last entry (the other's bytes then show up as a hole), and a
// `__metadata__` of null is the same as none.

import { open, readFile } from 'node:fs/promises'
import { dtypeBits, isDtype, type Dtype } from './dtypes'
import { SafetensorsError } from './errors'

/** The reference's limit on the JSON header. */
export const maxHeaderBytes = 100_000_000

export interface TensorInfo {
  name: string
  dtype: Dtype
  shape: number[]
  /** [begin, end) in bytes from the start of the data section, as the file says. */
  dataOffsets: [number, number]
}

export interface SafetensorsHeader {
  file: string
  /** N: the JSON header's length in bytes (padding included). */
  headerLength: number
  /** Where the data section starts in the file: 8 + N. */
  dataStart: number
  /** `__metadata__`; null when the file has none. */
  metadata: Record<string, string> | null
  /** Every tensor by name, in the order of their data in the file. */
  tensors: Map<string, TensorInfo>
}

export interface SafetensorsTensor extends TensorInfo {
  /** The tensor's bytes: a view into the file's bytes (not copied, not necessarily aligned). */
  data: Uint8Array
}

export interface Safetensors {
  file: string
  metadata: Record<string, string> | null
  /** Every tensor by name, in the order of their data in the file. */
  tensors: Map<string, SafetensorsTensor>
}

/** Parses and validates a whole safetensors file held in memory. `file` names it in errors. */
export function parseSafetensors(bytes: Uint8Array, file = '<bytes>'): Safetensors {
  const headerLength = readHeaderLength(bytes, bytes.length, file)
  const header = parseHeader(bytes.subarray(8, 8 + headerLength), bytes.length, file)
  const tensors = new Map<string, SafetensorsTensor>()
  for (const [name, info] of header.tensors) {
    const [begin, end] = info.dataOffsets
    tensors.set(name, { ...info, data: bytes.subarray(header.dataStart + begin, header.dataStart + end) })
  }
  return { file, metadata: header.metadata, tensors }
}

/** Reads and validates a safetensors file (all of it into memory: for adapters and small files). */
export async function readSafetensorsFile(path: string): Promise<Safetensors> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(path)
  } catch (error) {
    throw readFailed(path, error)
  }
  return parseSafetensors(bytes, path)
}

/**
 * Reads and validates only the header of a safetensors file, against the file's size: every
 * check of parseSafetensors, without reading the tensors' bytes (for multi-gigabyte weights).
 */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  let handle
  try {
    handle = await open(path, 'r')
  } catch (error) {
    throw readFailed(path, error)
  }
  try {
    const size = (await handle.stat()).size
    const first = new Uint8Array(Math.min(8, size))
    await handle.read(first, 0, first.length, 0)
    const headerLength = readHeaderLength(first, size, path)
    const json = new Uint8Array(headerLength)
    const { bytesRead } = await handle.read(json, 0, headerLength, 8)
    if (bytesRead !== headerLength) throw new SafetensorsError('HEADER_OUT_OF_FILE', path, `${path}: the file ended while its header was read`)
    return parseHeader(json, size, path)
  } catch (error) {
    if (error instanceof SafetensorsError) throw error
    throw readFailed(path, error)
  } finally {
    await handle.close()
  }
}

/** Validates the header bytes (`json`, N bytes) of a file of `fileSize` bytes. */
export function parseSafetensorsHeader(json: Uint8Array, fileSize: number, file = '<bytes>'): SafetensorsHeader {
  return parseHeader(json, fileSize, file)
}

// ---------------------------------------------------------------------------------------------

const damaged = 'the file is damaged or not a safetensors file'

function readFailed(path: string, error: unknown): SafetensorsError {
  const code = (error as NodeJS.ErrnoException)?.code
  const why = code === 'ENOENT' ? 'it does not exist' : code === 'EISDIR' ? 'it is a folder' : code === 'EACCES' ? 'permission denied' : String((error as Error)?.message ?? error)
  return new SafetensorsError('READ_FAILED', path, `${path}: cannot read the file: ${why}`, undefined, { cause: error })
}

function readHeaderLength(bytes: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || bytes.length < 8) {
    throw new SafetensorsError('TOO_SMALL', file, `${file}: ${fileSize} bytes is too small for a safetensors file (${damaged})`)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8)
  const low = view.getUint32(0, true)
  const high = view.getUint32(4, true)
  if (high !== 0 || low > maxHeaderBytes) {
    const n = high * 2 ** 32 + low
    throw new SafetensorsError('HEADER_TOO_LARGE', file, `${file}: the header claims ${n} bytes, over the ${maxHeaderBytes}-byte limit (${damaged})`)
  }
  if (8 + low > fileSize) {
    throw new SafetensorsError('HEADER_OUT_OF_FILE', file, `${file}: the header claims ${low} bytes but the file has only ${fileSize - 8} after the length (${damaged}, or cut short)`)
  }
  return low
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function parseHeader(json: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  const headerLength = json.length
  const dataStart = 8 + headerLength
  const dataLength = fileSize - dataStart
  let text: string
  try {
    text = utf8.decode(json)
  } catch {
    throw new SafetensorsError('HEADER_NOT_UTF8', file, `${file}: the header is not valid UTF-8 (${damaged})`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new SafetensorsError('HEADER_NOT_JSON', file, `${file}: the header is not valid JSON (${(error as Error).message}; ${damaged})`)
  }
  if (!isPlainObject(parsed)) {
    throw new SafetensorsError('HEADER_NOT_OBJECT', file, `${file}: the header is JSON but not an object of tensors (${damaged})`)
  }

  let metadata: Record<string, string> | null = null
  const infos: TensorInfo[] = []
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(entry, file)
      continue
    }
    infos.push(parseTensorInfo(name, entry, dataLength, file))
  }

  infos.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1])
  let position = 0
  let previous: TensorInfo | undefined
  for (const info of infos) {
    const [begin, end] = info.dataOffsets
    if (begin < position) {
      throw new SafetensorsError(
        'OVERLAP',
        file,
        `${file}: tensor ${quote(info.name)} (bytes ${begin}–${end}) overlaps tensor ${quote(previous!.name)} (bytes ${previous!.dataOffsets[0]}–${previous!.dataOffsets[1]}) (${damaged})`,
        info.name,
      )
    }
    if (begin > position) {
      throw new SafetensorsError('HOLE', file, `${file}: no tensor uses bytes ${position}–${begin} of the data, before tensor ${quote(info.name)} (${damaged})`, info.name)
    }
    position = end
    previous = info
  }
  if (dataLength > position) {
    throw new SafetensorsError(
      'HOLE',
      file,
      `${file}: ${dataLength - position} bytes follow the last tensor${previous ? ` (${quote(previous.name)})` : ''} that no tensor uses (${damaged})`,
      previous?.name,
    )
  }
  return { file, headerLength, dataStart, metadata, tensors: new Map(infos.map((info) => [info.name, info])) }
}

function parseMetadata(entry: unknown, file: string): Record<string, string> | null {
  if (entry === null) return null
  if (!isPlainObject(entry)) throw new SafetensorsError('BAD_METADATA', file, `${file}: __metadata__ is not an object of strings (${damaged})`)
  const metadata: Record<string, string> = {}
  for (const [key, value] of Object.entries(entry)) {
    if (typeof value !== 'string') {
      throw new SafetensorsError('BAD_METADATA', file, `${file}: __metadata__ ${quote(key)} is ${describe(value)}, not a string (${damaged})`)
    }
    Object.defineProperty(metadata, key, { value, enumerable: true, writable: true, configurable: true })
  }
  return metadata
}

function parseTensorInfo(name: string, entry: unknown, dataLength: number, file: string): TensorInfo {
  const at = `${file}: tensor ${quote(name)}`
  const fail = (code: 'BAD_TENSOR' | 'UNKNOWN_DTYPE' | 'BAD_SHAPE' | 'BAD_OFFSETS' | 'SIZE_MISMATCH' | 'OUT_OF_FILE', what: string): never => {
    throw new SafetensorsError(code, file, `${at}: ${what} (${damaged})`, name)
  }
  if (!isPlainObject(entry)) return fail('BAD_TENSOR', `its entry is ${describe(entry)}, not {dtype, shape, data_offsets}`)
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>
  if (dtype === undefined || shape === undefined || offsets === undefined) {
    const missing = (['dtype', 'shape', 'data_offsets'] as const).filter((key) => (entry as Record<string, unknown>)[key] === undefined)
    return fail('BAD_TENSOR', `its entry has no ${missing.join(', ')}`)
  }
  if (!isDtype(dtype)) return fail('UNKNOWN_DTYPE', `unknown dtype ${typeof dtype === 'string' ? quote(dtype) : describe(dtype)}`)
  if (!Array.isArray(shape) || !shape.every(isCount)) return fail('BAD_SHAPE', `its shape ${short(shape)} is not a list of non-negative integers`)
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    return fail('BAD_OFFSETS', `its data_offsets ${short(offsets)} are not [begin, end] byte offsets`)
  }
  const begin = offsets[0] as number
  const end = offsets[1] as number
  if (end < begin) return fail('BAD_OFFSETS', `its data_offsets [${begin}, ${end}] end before they begin`)
  let elements = 1
  for (const size of shape as number[]) {
    elements *= size
    if (!Number.isSafeInteger(elements)) return fail('BAD_SHAPE', `its shape ${short(shape)} has too many elements`)
  }
  const bits = elements * dtypeBits[dtype]
  if (!Number.isSafeInteger(bits)) return fail('BAD_SHAPE', `its shape ${short(shape)} has too many elements`)
  if (bits % 8 !== 0) return fail('SIZE_MISMATCH', `${elements} elements of ${dtype} (${dtypeBits[dtype]} bits each) do not fill whole bytes`)
  if (end - begin !== bits / 8) {
    return fail('SIZE_MISMATCH', `shape ${short(shape)} of ${dtype} needs ${bits / 8} bytes but its data_offsets [${begin}, ${end}] hold ${end - begin}`)
  }
  if (end > dataLength) return fail('OUT_OF_FILE', `its data (bytes ${begin}–${end}) runs past the end of the file's ${Math.max(0, dataLength)} data bytes (cut short?)`)
  return { name, dtype, shape: (shape as number[]).map((size) => size + 0), dataOffsets: [begin + 0, end + 0] }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isCount(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  return typeof value === 'object' ? 'an object' : `${typeof value === 'string' ? 'a string' : typeof value} ${short(value)}`
}

function short(value: unknown): string {
  let text: string
  try {
    text = JSON.stringify(value) ?? String(value)
  } catch {
    text = String(value)
  }
  return text.length > 60 ? `${text.slice(0, 57)}…` : text
}

function quote(name: string): string {
  const text = JSON.stringify(name)
  return text.length > 200 ? `${text.slice(0, 197)}…` : text
}
