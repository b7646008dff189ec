// The element types of the safetensors format (huggingface/safetensors 0.8, `Dtype`), in the
// reference's enum order, which is ascending alignment: the writer stores tensors by descending
// position in this list, then by name.

export const dtypes = [
  'BOOL',
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'F8_E8M0',
  'F8_E4M3FNUZ',
  'F8_E5M2FNUZ',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'C64',
  'F64',
  'I64',
  'U64',
] as const
export type Dtype = (typeof dtypes)[number]

/** Bits per element. F4 and the F6 types are packed: a tensor of them must fill whole bytes. */
export const dtypeBits: Readonly<Record<Dtype, number>> = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
}

const dtypeRank = new Map<string, number>(dtypes.map((dtype, index) => [dtype, index]))

export function isDtype(value: unknown): value is Dtype {
  return typeof value === 'string' && dtypeRank.has(value)
}

/** The reference writer's order: higher alignment first (its enum order, descending). */
export function compareDtypesForWriting(a: Dtype, b: Dtype): number {
  return dtypeRank.get(b)! - dtypeRank.get(a)!
}

export type TensorArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array

/**
 * The typed array constructor whose elements are this dtype's, bit for bit: F16 and BF16 as their
 * 16-bit patterns (Uint16Array), C64 as interleaved real/imaginary float32 pairs, 8-bit and packed
 * types as bytes.
 */
export function arrayTypeOf(dtype: Dtype): { new (buffer: ArrayBuffer): TensorArray; BYTES_PER_ELEMENT: number } {
  switch (dtype) {
    case 'F64':
      return Float64Array
    case 'F32':
    case 'C64':
      return Float32Array
    case 'I64':
      return BigInt64Array
    case 'U64':
      return BigUint64Array
    case 'I32':
      return Int32Array
    case 'U32':
      return Uint32Array
    case 'I16':
      return Int16Array
    case 'U16':
    case 'F16':
    case 'BF16':
      return Uint16Array
    case 'I8':
      return Int8Array
    default:
      return Uint8Array
  }
}

/** True on the (little-endian) hosts Attune runs on; typed arrays are then the file's bytes. */
export const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** Reverses every `width`-byte group in place (little-endian ↔ big-endian). */
export function swapBytes(bytes: Uint8Array, width: number): void {
  for (let i = 0; i + width <= bytes.length; i += width) {
    for (let a = i, b = i + width - 1; a < b; a++, b--) {
      const t = bytes[a]!
      bytes[a] = bytes[b]!
      bytes[b] = t
    }
  }
}

/** Compares two strings as Rust does (`String: Ord`): by their UTF-8 bytes, i.e. by code point. */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    // Only where one side is a surrogate does UTF-16 order differ from code point order.
    const xs = x >= 0xd800 && x <= 0xdfff
    const ys = y >= 0xd800 && y <= 0xdfff
    if (xs === ys) return x - y
    return xs ? 1 : -1 // a surrogate half (code point ≥ 0x10000) sorts after any BMP character
  }
  return a.length - b.length
}
