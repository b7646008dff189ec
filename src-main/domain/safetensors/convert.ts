// Turning a tensor's bytes into numbers and back: typed arrays of a dtype's elements, float32
// from F32/F16/BF16/F64, and float32 rounded to float16 / bfloat16 bits as torch rounds them.

import { arrayTypeOf, hostIsLittleEndian, swapBytes, type TensorArray } from './dtypes'
import { SafetensorsError } from './errors'
import type { SafetensorsTensor } from './read'

/**
 * The tensor's elements in a typed array of their own (copied, so aligned; byte-swapped on a
 * big-endian host): Float32Array for F32 (and C64 as real/imaginary pairs), Float64Array,
 * BigInt64Array / BigUint64Array for I64 / U64, Int32Array…, Uint16Array of the bit patterns for
 * F16 and BF16, Uint8Array for BOOL, U8, the 8-bit floats and the packed types.
 */
export function tensorArray(tensor: Pick<SafetensorsTensor, 'dtype' | 'data'>): TensorArray {
  const type = arrayTypeOf(tensor.dtype)
  const bytes = new Uint8Array(tensor.data) // a copy with its own buffer (Buffer#slice would be a view)
  if (!hostIsLittleEndian && type.BYTES_PER_ELEMENT > 1) swapBytes(bytes, type.BYTES_PER_ELEMENT)
  return new type(bytes.buffer)
}

/** The tensor's values as float32: exact for F32, F16 and BF16; F64 is rounded to nearest. */
export function tensorToFloat32(tensor: Pick<SafetensorsTensor, 'name' | 'dtype' | 'data'>, file = '<bytes>'): Float32Array {
  switch (tensor.dtype) {
    case 'F32':
      return tensorArray(tensor) as Float32Array
    case 'F16':
      return float16BitsToFloat32(tensorArray(tensor) as Uint16Array)
    case 'BF16':
      return bfloat16BitsToFloat32(tensorArray(tensor) as Uint16Array)
    case 'F64':
      return Float32Array.from(tensorArray(tensor) as Float64Array)
    default:
      throw new SafetensorsError('BAD_INPUT', file, `${file}: tensor ${JSON.stringify(tensor.name)} is ${tensor.dtype}, not a floating-point tensor Attune can read as float32`, tensor.name)
  }
}

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** float16 bit patterns → float32 values (exact). */
export function float16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length)
  const outBits = new Uint32Array(out.buffer)
  for (let i = 0; i < bits.length; i++) outBits[i] = float16ToFloat32Bits(bits[i]!)
  return out
}

/** bfloat16 bit patterns → float32 values (exact). */
export function bfloat16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length)
  const outBits = new Uint32Array(out.buffer)
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i]! << 16
  return out
}

/**
 * float32 values → float16 bits, rounded to nearest, ties to even, as torch (x86 F16C) does:
 * overflow gives ±infinity, values below half the smallest subnormal give ±0, and a NaN keeps
 * its sign and the top of its payload with the quiet bit set.
 */
export function float32ToFloat16Bits(values: Float32Array | readonly number[]): Uint16Array {
  const out = new Uint16Array(values.length)
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i]!
    out[i] = float32BitsToFloat16(u32[0]!)
  }
  return out
}

/**
 * float32 values → bfloat16 bits, rounded to nearest, ties to even, as torch does. A NaN keeps
 * its sign and the top of its payload with the quiet bit set (torch's vectorized path writes
 * 0xFFFF for every NaN instead; both are NaN).
 */
export function float32ToBfloat16Bits(values: Float32Array | readonly number[]): Uint16Array {
  const out = new Uint16Array(values.length)
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i]!
    out[i] = float32BitsToBfloat16(u32[0]!)
  }
  return out
}

export function float32BitsToBfloat16(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff
  const lsb = (x >>> 16) & 1
  return Math.floor(((x >>> 0) + 0x7fff + lsb) / 65536) & 0xffff
}

export function float32BitsToFloat16(x: number): number {
  const sign = (x >>> 16) & 0x8000
  const exponent = (x >>> 23) & 0xff
  const mantissa = x & 0x7fffff
  if (exponent === 0xff) return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13)
  const e = exponent - 127 + 15 // the float16 biased exponent
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    // A float16 subnormal (or zero): the 24-bit significand scaled to units of 2^-24.
    if (e < -10) return sign
    const significand = mantissa | 0x800000
    const shift = 14 - e
    let h = significand >>> shift
    const rest = significand & ((1 << shift) - 1)
    const half = 1 << (shift - 1)
    if (rest > half || (rest === half && (h & 1) === 1)) h++
    return sign | h
  }
  let h = (e << 10) | (mantissa >>> 13)
  const rest = mantissa & 0x1fff
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++ // a carry may reach infinity: right
  return sign | h
}

export function float16ToFloat32Bits(h: number): number {
  const sign = (h & 0x8000) << 16
  const exponent = (h >>> 10) & 0x1f
  let mantissa = h & 0x3ff
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0
  if (exponent === 0) {
    if (mantissa === 0) return sign >>> 0
    // Subnormal: normalise.
    let e = -1
    do {
      e++
      mantissa <<= 1
    } while ((mantissa & 0x400) === 0)
    return (sign | ((127 - 15 - e) << 23) | ((mantissa & 0x3ff) << 13)) >>> 0
  }
  return (sign | ((exponent - 15 + 127) << 23) | (mantissa << 13)) >>> 0
}
