// The safetensors reader and writer (reference.md, "Models") against files written by Python's
// safetensors (test/fixtures/peft/safetensors/, made by test/fixtures/peft/make_fixtures.py): read
// back exactly, and written byte for byte the same; plus round trips, float16/bfloat16
// conversions as torch rounds them, and every documented error on hand-made files.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  tensorArray,
  tensorToFloat32,
} from '../../src-main/domain/safetensors/convert'
import { arrayTypeOf, compareUtf8, dtypeBits, dtypes, type Dtype } from '../../src-main/domain/safetensors/dtypes'
import { SafetensorsError, type SafetensorsErrorCode } from '../../src-main/domain/safetensors/errors'
import { parseSafetensors, readSafetensorsFile, readSafetensorsHeader } from '../../src-main/domain/safetensors/read'
import { serializeSafetensors, writeSafetensorsFile, type TensorToWrite } from '../../src-main/domain/safetensors/write'

const fixtures = join(process.cwd(), 'test', 'fixtures', 'peft', 'safetensors')
const llamaWeights = join(process.cwd(), 'test', 'golden', 'fixtures', 'llama', 'model.safetensors')
const regenerate = 'regenerate with `.venv/bin/python test/fixtures/peft/make_fixtures.py`'

interface FixtureTensor {
  name: string
  dtype: Dtype
  shape: number[]
  bits: string[]
}
interface Fixture {
  metadata: Record<string, string> | null
  tensors: FixtureTensor[]
}

const loadFixture = (name: string): Fixture => JSON.parse(readFileSync(join(fixtures, `${name}.json`), 'utf8')) as Fixture

/** The little-endian bytes of a fixture tensor's elements, from their bit patterns. */
function bytesOf(tensor: FixtureTensor): Uint8Array {
  const width = dtypeBits[tensor.dtype] / 8
  const out = new Uint8Array(tensor.bits.length * width)
  tensor.bits.forEach((text, i) => {
    let value = BigInt(text)
    for (let b = 0; b < width; b++) {
      out[i * width + b] = Number(value & 0xffn)
      value >>= 8n
    }
  })
  return out
}

/** Bit patterns of the elements read back, as decimal strings. */
function bitsOf(dtype: Dtype, data: Uint8Array): string[] {
  const width = dtypeBits[dtype] / 8
  const out: string[] = []
  for (let i = 0; i < data.length; i += width) {
    let value = 0n
    for (let b = width - 1; b >= 0; b--) value = (value << 8n) | BigInt(data[i + b]!)
    out.push(value.toString())
  }
  return out
}

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'attune-safetensors-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe.each(['python-written', 'python-names'])('%s.safetensors (written by Python safetensors)', (name) => {
  const file = join(fixtures, `${name}.safetensors`)
  const fixture = loadFixture(name)

  it('is read back exactly: names, dtypes, shapes, every bit, metadata', async () => {
    const read = await readSafetensorsFile(file)
    expect(read.metadata, regenerate).toEqual(fixture.metadata)
    expect([...read.tensors.keys()].sort(compareUtf8)).toEqual(fixture.tensors.map((t) => t.name).sort(compareUtf8))
    for (const expected of fixture.tensors) {
      const tensor = read.tensors.get(expected.name)!
      expect(tensor.dtype, expected.name).toBe(expected.dtype)
      expect(tensor.shape, expected.name).toEqual(expected.shape)
      expect(bitsOf(tensor.dtype, tensor.data), expected.name).toEqual(expected.bits)
    }
  })

  it('our writer produces the same bytes for the same tensors (from raw bytes and from typed arrays)', () => {
    const reference = new Uint8Array(readFileSync(file))
    const fromBytes = new Map<string, TensorToWrite>(fixture.tensors.map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data: bytesOf(t) }]))
    expect(Buffer.from(serializeSafetensors(fromBytes, fixture.metadata)).equals(Buffer.from(reference))).toBe(true)
    const typed: Record<string, TensorToWrite> = {}
    for (const t of fixture.tensors) {
      Object.defineProperty(typed, t.name, { value: { dtype: t.dtype, shape: t.shape, data: tensorArray({ dtype: t.dtype, data: bytesOf(t) }) }, enumerable: true })
    }
    expect(Buffer.from(serializeSafetensors(typed, fixture.metadata)).equals(Buffer.from(reference))).toBe(true)
  })

  it('the header-only reader agrees with the full reader', async () => {
    const header = await readSafetensorsHeader(file)
    const full = await readSafetensorsFile(file)
    expect(header.metadata).toEqual(full.metadata)
    expect([...header.tensors.keys()]).toEqual([...full.tensors.keys()])
    for (const [key, info] of header.tensors) {
      const tensor = full.tensors.get(key)!
      expect(info).toEqual({ name: tensor.name, dtype: tensor.dtype, shape: tensor.shape, dataOffsets: tensor.dataOffsets })
      expect(tensor.data.byteOffset - full.tensors.values().next().value!.data.byteOffset).toBe(info.dataOffsets[0])
    }
    expect(header.dataStart % 8).toBe(0)
  })
})

describe('the writer', () => {
  it('orders tensors by dtype alignment (descending), then by name in UTF-8 byte order', () => {
    const one = (dtype: Dtype): TensorToWrite => ({ dtype, shape: [1], data: new Uint8Array(dtypeBits[dtype] / 8) })
    const bytes = serializeSafetensors({ b: one('U8'), a: one('F16'), 'x\ue000': one('F32'), 'x😀': one('F32'), X: one('F32'), c: one('I64'), d: one('BF16'), e: one('BOOL') })
    const names = [...parseSafetensors(bytes).tensors.keys()]
    expect(names).toEqual(['c', 'X', 'x\ue000', 'x😀', 'd', 'a', 'b', 'e'])
  })

  it('pads the header with spaces to a multiple of 8 and writes an empty file as the reference does', () => {
    // safetensors' own tests: serialize({}) and serialize({}, {"framework": "pt"}).
    expect([...serializeSafetensors({})]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32])
    expect(Buffer.from(serializeSafetensors({}, { framework: 'pt' })).subarray(8).toString()).toBe('{"__metadata__":{"framework":"pt"}}     ')
    const attn = serializeSafetensors({ 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) } })
    expect(attn.length).toBe(8 + 64 + 24)
    expect(Buffer.from(attn.subarray(8, 72)).toString()).toBe('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}')
  })

  it('refuses what it cannot store, naming the tensor', () => {
    const expectBadInput = (tensors: Record<string, TensorToWrite>, pattern: RegExp, metadata?: Record<string, string>) => {
      let caught: unknown
      try {
        serializeSafetensors(tensors, metadata, 'out.safetensors')
      } catch (error) {
        caught = error
      }
      expect(caught).toBeInstanceOf(SafetensorsError)
      expect((caught as SafetensorsError).code).toBe('BAD_INPUT')
      expect((caught as Error).message).toMatch(pattern)
    }
    expectBadInput({ w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }, /tensor "w": shape \[3\] of F32 needs 12 bytes but the data has 8/)
    expectBadInput({ w: { dtype: 'F16', shape: [2], data: new Float32Array(2) } }, /Float32Array does not hold F16 elements \(use Uint16Array/)
    expectBadInput({ w: { dtype: 'F99' as Dtype, shape: [1], data: new Uint8Array(1) } }, /unknown dtype "F99"/)
    expectBadInput({ w: { dtype: 'U8', shape: [-1], data: new Uint8Array(0) } }, /shape \[-1\] is not a list of non-negative integers/)
    expectBadInput({ w: { dtype: 'F4', shape: [3], data: new Uint8Array(2) } }, /3 elements of F4 do not fill whole bytes/)
    expectBadInput({ __metadata__: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }, /reserved/)
    expectBadInput({ ['\ud800']: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }, /well-formed/)
    expectBadInput({}, /metadata "k"/, { k: 1 as unknown as string })
  })

  it('round-trips tensors of every byte-sized dtype, metadata and odd shapes', () => {
    let seed = 7
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32)
    const tensors = new Map<string, TensorToWrite>()
    const byteSized = dtypes.filter((d) => dtypeBits[d] % 8 === 0)
    for (const [i, dtype] of byteSized.entries()) {
      for (const shape of [[], [0], [3], [2, 3], [1, 2, 0, 4], [2, 1, 2, 2]]) {
        const size = shape.reduce((a, b) => a * b, 1) * (dtypeBits[dtype] / 8)
        const data = Uint8Array.from({ length: size }, () => Math.floor(rand() * 256))
        tensors.set(`t${i}.${shape.join('x')}`, { dtype, shape, data })
      }
    }
    tensors.set('packed', { dtype: 'F4', shape: [2, 3], data: new Uint8Array([1, 2, 3]) })
    const bytes = serializeSafetensors(tensors, { format: 'pt', note: 'é "quoted"\n' })
    const read = parseSafetensors(bytes, 'roundtrip')
    expect(read.metadata).toEqual({ format: 'pt', note: 'é "quoted"\n' })
    expect(read.tensors.size).toBe(tensors.size)
    for (const [name, tensor] of tensors) {
      const back = read.tensors.get(name)!
      expect(back.dtype).toBe(tensor.dtype)
      expect(back.shape).toEqual(tensor.shape)
      expect([...back.data]).toEqual([...(tensor.data as Uint8Array)])
    }
    // Every tensor starts at a multiple of its element size from the start of the file.
    for (const tensor of read.tensors.values()) expect(tensor.data.byteOffset % Math.max(1, dtypeBits[tensor.dtype] / 8)).toBe(0)
  })

  it('writes files atomically and reads them back', async () => {
    const path = join(dir, 'written.safetensors')
    await writeSafetensorsFile(path, { w: { dtype: 'F32', shape: [2], data: new Float32Array([1.5, -2]) } }, { format: 'pt' })
    const read = await readSafetensorsFile(path)
    expect([...tensorToFloat32(read.tensors.get('w')!)]).toEqual([1.5, -2])
  })
})

describe('float16 and bfloat16', () => {
  const conversions = JSON.parse(readFileSync(join(fixtures, 'conversions.json'), 'utf8')) as Record<string, string[]>
  const f32 = (bits: string[]) => new Float32Array(new Uint32Array(bits.map(Number)).buffer)

  it('rounds float32 as torch does (nearest, ties to even, overflow, subnormals)', () => {
    const values = f32(conversions.f32_bits!)
    expect([...float32ToFloat16Bits(values)].map(String)).toEqual(conversions.f16_bits)
    expect([...float32ToBfloat16Bits(values)].map(String)).toEqual(conversions.bf16_bits)
    expect([...float32ToFloat16Bits(f32(conversions.nan_f32_bits!))].map(String)).toEqual(conversions.nan_f16_bits)
    for (const h of float32ToBfloat16Bits(f32(conversions.nan_f32_bits!))) expect(Number.isNaN(bfloat16BitsToFloat32(new Uint16Array([h]))[0])).toBe(true)
  })

  it('decodes every float16 and bfloat16 pattern exactly (pattern → float32 → same pattern)', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i)
    for (const [decode, encode] of [
      [float16BitsToFloat32, float32ToFloat16Bits],
      [bfloat16BitsToFloat32, float32ToBfloat16Bits],
    ] as const) {
      const values = decode(all)
      const back = encode(values)
      for (let i = 0; i < 65536; i++) {
        if (Number.isNaN(values[i])) expect(Number.isNaN(decode(new Uint16Array([back[i]!]))[0])).toBe(true)
        else if (back[i] !== i) expect.fail(`pattern ${i.toString(16)} → ${values[i]} → ${back[i]!.toString(16)}`)
      }
    }
    expect(float16BitsToFloat32(new Uint16Array([0x0001, 0x3c00, 0x7bff, 0xfc00]))).toEqual(new Float32Array([2 ** -24, 1, 65504, -Infinity]))
  })

  it('reads the python file F16, BF16 and F64 tensors as float32', async () => {
    const read = await readSafetensorsFile(join(fixtures, 'python-written.safetensors'))
    const f16 = read.tensors.get('f16')!
    expect(tensorToFloat32(f16)).toEqual(float16BitsToFloat32(tensorArray(f16) as Uint16Array))
    expect(tensorToFloat32(read.tensors.get('f64')!)).toEqual(Float32Array.from(tensorArray(read.tensors.get('f64')!) as Float64Array))
    expect(() => tensorToFloat32(read.tensors.get('i32')!, 'x.safetensors')).toThrow(/tensor "i32" is I32, not a floating-point tensor/)
    expect(tensorArray(read.tensors.get('i64')!)).toBeInstanceOf(arrayTypeOf('I64'))
    expect((tensorArray(read.tensors.get('i64')!) as BigInt64Array)[2]).toBe(2n ** 53n + 1n)
  })
})

describe('the golden llama weights', () => {
  it('reads model.safetensors (header only and whole) with every decoder tensor', async () => {
    const header = await readSafetensorsHeader(llamaWeights)
    expect(header.tensors.get('model.layers.1.mlp.down_proj.weight')).toMatchObject({ dtype: 'F32', shape: [64, 96] })
    expect(header.tensors.get('model.layers.0.self_attn.k_proj.weight')).toMatchObject({ dtype: 'F32', shape: [32, 64] })
    const full = await readSafetensorsFile(llamaWeights)
    expect(full.tensors.size).toBe(header.tensors.size)
    expect(full.metadata).toEqual(header.metadata)
  })
})

// ---------------------------------------------------------------------------------------------
// Every documented error, on hand-made files.

function file(header: unknown, data: Uint8Array | number = 0, options: { raw?: string | Uint8Array; length?: bigint } = {}): Uint8Array {
  const raw = options.raw ?? JSON.stringify(header)
  const json = typeof raw === 'string' ? new TextEncoder().encode(raw) : raw
  const dataBytes = typeof data === 'number' ? new Uint8Array(data) : data
  const out = new Uint8Array(8 + json.length + dataBytes.length)
  new DataView(out.buffer).setBigUint64(0, options.length ?? BigInt(json.length), true)
  out.set(json, 8)
  out.set(dataBytes, 8 + json.length)
  return out
}

const u8 = (begin: number, end: number, shape = [end - begin]) => ({ dtype: 'U8', shape, data_offsets: [begin, end] })

const errorCases: [string, Uint8Array, SafetensorsErrorCode, RegExp, string?][] = [
  ['an empty file', new Uint8Array(0), 'TOO_SMALL', /0 bytes is too small/],
  ['7 bytes', new Uint8Array(7), 'TOO_SMALL', /7 bytes is too small/],
  ['a header over 100 MB', file({}, 0, { length: 100_000_001n }), 'HEADER_TOO_LARGE', /100000001 bytes, over the 100000000-byte limit/],
  ['a header length of 2^64 − 1', file({}, 0, { length: 2n ** 64n - 1n }), 'HEADER_TOO_LARGE', /over the 100000000-byte limit/],
  ['a header past the end', file({}, 0, { length: 50n }), 'HEADER_OUT_OF_FILE', /claims 50 bytes but the file has only 2/],
  ['invalid UTF-8', file(null, 0, { raw: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) }), 'HEADER_NOT_UTF8', /not valid UTF-8/],
  ['not JSON', file(null, 0, { raw: '{"a":' }), 'HEADER_NOT_JSON', /not valid JSON/],
  ['a BOM before the JSON', file(null, 0, { raw: '\ufeff{}' }), 'HEADER_NOT_JSON', /not valid JSON/],
  ['a JSON list', file([]), 'HEADER_NOT_OBJECT', /not an object of tensors/],
  ['JSON null', file(null), 'HEADER_NOT_OBJECT', /not an object/],
  ['metadata with a number', file({ __metadata__: { format: 1 } }), 'BAD_METADATA', /__metadata__ "format" is number 1, not a string/],
  ['metadata as a list', file({ __metadata__: ['pt'] }), 'BAD_METADATA', /__metadata__ is not an object of strings/],
  ['a tensor entry that is a string', file({ w: 'F32' }), 'BAD_TENSOR', /tensor "w": its entry is a string "F32"/, 'w'],
  ['a tensor without data_offsets', file({ w: { dtype: 'U8', shape: [1] } }, 1), 'BAD_TENSOR', /tensor "w": its entry has no data_offsets/, 'w'],
  ['an unknown dtype', file({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, 16), 'UNKNOWN_DTYPE', /tensor "w": unknown dtype "F128"/, 'w'],
  ['a lower-case dtype', file({ w: { dtype: 'f32', shape: [1], data_offsets: [0, 4] } }, 4), 'UNKNOWN_DTYPE', /unknown dtype "f32"/, 'w'],
  ['a negative dimension', file({ w: { dtype: 'U8', shape: [-1], data_offsets: [0, 1] } }, 1), 'BAD_SHAPE', /its shape \[-1\] is not a list of non-negative integers/, 'w'],
  ['a fractional dimension', file({ w: { dtype: 'U8', shape: [1.5], data_offsets: [0, 1] } }, 1), 'BAD_SHAPE', /shape \[1.5\]/, 'w'],
  ['a string dimension', file({ w: { dtype: 'U8', shape: ['2'], data_offsets: [0, 2] } }, 2), 'BAD_SHAPE', /shape \["2"\]/, 'w'],
  ['too many elements', file({ w: { dtype: 'F64', shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 8] } }, 8), 'BAD_SHAPE', /too many elements/, 'w'],
  ['three offsets', file({ w: { dtype: 'U8', shape: [1], data_offsets: [0, 1, 2] } }, 1), 'BAD_OFFSETS', /data_offsets \[0,1,2\] are not \[begin, end\]/, 'w'],
  ['offsets backwards', file({ w: { dtype: 'U8', shape: [0], data_offsets: [4, 0] } }, 4), 'BAD_OFFSETS', /end before they begin/, 'w'],
  ['a size that does not match the shape', file({ w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, 12), 'SIZE_MISMATCH', /shape \[2,2\] of F32 needs 16 bytes but its data_offsets \[0, 12\] hold 12/, 'w'],
  ['packed elements that do not fill bytes', file({ w: { dtype: 'F4', shape: [3], data_offsets: [0, 2] } }, 2), 'SIZE_MISMATCH', /3 elements of F4 \(4 bits each\) do not fill whole bytes/, 'w'],
  ['data past the end (a cut file)', file({ a: u8(0, 4), w: u8(4, 10) }, 8), 'OUT_OF_FILE', /tensor "w": its data \(bytes 4–10\) runs past the end of the file's 8 data bytes/, 'w'],
  ['overlapping tensors', file({ a: u8(0, 4), w: u8(2, 6) }, 6), 'OVERLAP', /tensor "w" \(bytes 2–6\) overlaps tensor "a" \(bytes 0–4\)/, 'w'],
  ['a zero-sized tensor inside another', file({ a: u8(0, 4), w: u8(2, 2) }, 4), 'OVERLAP', /tensor "a" \(bytes 0–4\) overlaps tensor "w"|tensor "w" \(bytes 2–2\) overlaps tensor "a"/],
  ['the same bytes twice', file({ a: u8(0, 4), w: u8(0, 4) }, 4), 'OVERLAP', /overlaps/],
  ['a hole between tensors', file({ a: u8(0, 4), w: u8(6, 8) }, 8), 'HOLE', /no tensor uses bytes 4–6 of the data, before tensor "w"/, 'w'],
  ['a hole at the start', file({ w: u8(2, 4) }, 4), 'HOLE', /no tensor uses bytes 0–2/, 'w'],
  ['bytes after the last tensor', file({ w: u8(0, 4) }, 7), 'HOLE', /3 bytes follow the last tensor \("w"\) that no tensor uses/, 'w'],
  ['data with no tensors', file({}, 3), 'HOLE', /3 bytes follow the last tensor that no tensor uses/],
]

describe('documented errors', () => {
  it.each(errorCases)('%s → %s', async (_label, bytes, code, message, tensor) => {
    let caught: unknown
    try {
      parseSafetensors(bytes, 'model.safetensors')
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(SafetensorsError)
    const error = caught as SafetensorsError
    expect(error.code).toBe(code)
    expect(error.file).toBe('model.safetensors')
    expect(error.message).toMatch(/^model\.safetensors: /)
    expect(error.message).toMatch(message)
    if (tensor) expect(error.tensor).toBe(tensor)
    // The header-only reader of a file finds the same fault.
    const path = join(dir, `case-${code}-${bytes.length}.safetensors`)
    writeFileSync(path, bytes)
    await expect(readSafetensorsHeader(path)).rejects.toMatchObject({ code, file: path })
  })

  it('accepts what the reference accepts: whitespace around the JSON, unknown fields, null metadata, scalars, empty tensors, any order', () => {
    const read = parseSafetensors(
      file(null, 6, {
        raw: ' \t\n{"__metadata__":null,"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6],"extra":true},"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"e":{"dtype":"F64","shape":[0,3],"data_offsets":[4,4]}}\r\n  ',
      }),
    )
    expect(read.metadata).toBeNull()
    expect([...read.tensors.keys()]).toEqual(['s', 'e', 'b'])
    expect(read.tensors.get('s')!.shape).toEqual([])
    expect(read.tensors.get('b')).not.toHaveProperty('extra')
  })

  it('a missing file is READ_FAILED naming it', async () => {
    const path = join(dir, 'missing.safetensors')
    await expect(readSafetensorsFile(path)).rejects.toMatchObject({ code: 'READ_FAILED', message: `${path}: cannot read the file: it does not exist` })
    await expect(readSafetensorsHeader(path)).rejects.toMatchObject({ code: 'READ_FAILED' })
    await expect(readSafetensorsFile(dir)).rejects.toMatchObject({ code: 'READ_FAILED' })
  })
})
