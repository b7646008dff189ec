// Fuzzing the safetensors reader: 3000 mutated files (byte edits, and header edits that keep the
// JSON valid so the deeper checks run), with a fixed seed so a failure can be replayed. Whatever
// comes in, reading returns a fully consistent file or throws a SafetensorsError with a documented
// code whose message names the file (and the tensor, which the header has); never another
// exception, never a hang. The header-only reader of the same bytes on disk must agree.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dtypeBits, dtypes } from '../../src-main/domain/safetensors/dtypes'
import { SafetensorsError, type SafetensorsErrorCode } from '../../src-main/domain/safetensors/errors'
import { parseSafetensors, readSafetensorsHeader, type Safetensors } from '../../src-main/domain/safetensors/read'
import { serializeSafetensors } from '../../src-main/domain/safetensors/write'
import { random, type Random } from './support/random'


const documented: SafetensorsErrorCode[] = [
  'TOO_SMALL',
  'HEADER_TOO_LARGE',
  'HEADER_OUT_OF_FILE',
  'HEADER_NOT_UTF8',
  'HEADER_NOT_JSON',
  'HEADER_NOT_OBJECT',
  'BAD_METADATA',
  'BAD_TENSOR',
  'UNKNOWN_DTYPE',
  'BAD_SHAPE',
  'BAD_OFFSETS',
  'SIZE_MISMATCH',
  'OUT_OF_FILE',
  'OVERLAP',
  'HOLE',
]

const fixtures = join(process.cwd(), 'test', 'fixtures', 'peft')
const seeds: Uint8Array[] = [
  new Uint8Array(readFileSync(join(fixtures, 'safetensors', 'python-written.safetensors'))),
  new Uint8Array(readFileSync(join(fixtures, 'safetensors', 'python-names.safetensors'))),
  new Uint8Array(readFileSync(join(fixtures, 'llama-lora-qv', 'adapter_model.safetensors'))),
  serializeSafetensors({ a: { dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }, b: { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) } }, { format: 'pt' }),
  serializeSafetensors({}),
]

function headerOf(bytes: Uint8Array): { json: Record<string, unknown>; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true))
  return { json: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>, data: bytes.subarray(8 + n) }
}

function rebuild(json: unknown, data: Uint8Array, pad = 0): Uint8Array {
  const text = new TextEncoder().encode(JSON.stringify(json) + ' '.repeat(pad))
  const out = new Uint8Array(8 + text.length + data.length)
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true)
  out.set(text, 8)
  out.set(data, 8 + text.length)
  return out
}

const oddValues: unknown[] = [null, true, -1, 0, 1, 2.5, 1e300, 2 ** 53 + 2, '', 'x', [], {}, [0], [1, 2], ['1'], { dtype: 'U8' }]

/** Edits the header's JSON so that it stays valid JSON: the deeper checks then run. */
function mutateHeader(rng: Random, bytes: Uint8Array): Uint8Array {
  const { json, data } = headerOf(bytes)
  const names = Object.keys(json).filter((name) => name !== '__metadata__')
  const edits = 1 + rng.int(3)
  let body = data
  for (let e = 0; e < edits; e++) {
    const name = names.length > 0 ? rng.pick(names) : undefined
    const value = name !== undefined ? json[name] : undefined
    const entry = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
    switch (rng.int(13)) {
      case 0: // shift an offset
        if (entry && Array.isArray(entry.data_offsets)) {
          const offsets = entry.data_offsets as number[]
          offsets[rng.int(2)]! += rng.pick([-8, -4, -2, -1, 1, 2, 4, 8, 1000, -1e6])
        }
        break
      case 1: // another dtype, known or not
        if (entry) entry.dtype = rng.next() < 0.8 ? rng.pick(dtypes) : rng.pick(['f32', 'F128', '', 'BOOLEAN', 7])
        break
      case 2: // change a dimension
        if (entry && Array.isArray(entry.shape)) {
          const shape = entry.shape as unknown[]
          if (shape.length > 0 && rng.next() < 0.7) shape[rng.int(shape.length)] = rng.pick([0, 1, 2, 3, -1, 1.5, 2 ** 40, '2', null])
          else if (rng.next() < 0.5) shape.push(rng.pick([1, 2, 0]))
          else shape.pop()
        }
        break
      case 3: // replace a field with an odd value
        if (entry) entry[rng.pick(['dtype', 'shape', 'data_offsets'])] = structuredClone(rng.pick(oddValues))
        break
      case 4: // drop a field
        if (entry) delete entry[rng.pick(['dtype', 'shape', 'data_offsets'])]
        break
      case 5: // drop a tensor (its bytes become a hole)
        if (name !== undefined) delete json[name]
        break
      case 6: // add a tensor somewhere
        json[`extra${rng.int(100)}`] = { dtype: rng.pick(dtypes), shape: [rng.int(5)], data_offsets: [rng.int(64), rng.int(64)] }
        break
      case 7: // metadata edits
        json.__metadata__ = rng.pick([null, { format: 'pt' }, { format: 1 }, ['pt'], 'pt', {}, { a: { b: 'c' } }])
        break
      case 8: // the whole entry replaced
        if (name !== undefined) json[name] = structuredClone(rng.pick(oddValues))
        break
      case 9: // add or remove data bytes at the end
        body = rng.next() < 0.5 ? body.subarray(0, Math.max(0, body.length - 1 - rng.int(8))) : Uint8Array.from([...body, ...new Uint8Array(1 + rng.int(8))])
        break
      case 11: // the same tensor under a second name: its bytes used twice
        if (entry) json[`${name}.copy`] = structuredClone(entry)
        break
      case 12: // not an object at all
        return rebuild(rng.pick([[], null, 1, 'x', [json]]), body)
      default: // swap two tensors' offsets
        if (names.length > 1) {
          const other = json[rng.pick(names)] as Record<string, unknown> | undefined
          if (entry && other && typeof other === 'object' && !Array.isArray(other)) [entry.data_offsets, other.data_offsets] = [other.data_offsets, entry.data_offsets]
        }
    }
  }
  return rebuild(json, body, rng.int(9))
}

/** Byte edits: anything goes. */
function mutateBytes(rng: Random, bytes: Uint8Array): Uint8Array {
  const out = [...bytes]
  const edits = 1 + rng.int(4)
  for (let i = 0; i < edits; i++) {
    const at = rng.int(out.length + 1)
    switch (rng.int(6)) {
      case 0: // flip a byte (in the header more often)
        if (out.length > 0) out[Math.min(rng.next() < 0.7 ? Math.min(at, 8 + rng.int(200)) : at, out.length - 1)] = rng.int(256)
        break
      case 1: // delete a run
        out.splice(at, 1 + rng.int(16))
        break
      case 2: // insert random bytes
        out.splice(at, 0, ...Array.from({ length: 1 + rng.int(8) }, () => rng.int(256)))
        break
      case 3: // truncate
        out.length = rng.int(out.length + 1)
        break
      case 4: // a random header length (small or huge)
        for (let b = 0; b < 8 && b < out.length; b++) out[b] = b < 2 || rng.next() < 0.2 ? rng.int(256) : 0
        break
      default: // set one byte of the header length
        if (out.length > 0) out[rng.int(Math.min(8, out.length))] = rng.int(256)
    }
  }
  return Uint8Array.from(out)
}

type Outcome = { ok: true; read: Safetensors } | { ok: false; error: SafetensorsError }

function attempt(bytes: Uint8Array, file: string): Outcome {
  try {
    return { ok: true, read: parseSafetensors(bytes, file) }
  } catch (error) {
    if (!(error instanceof SafetensorsError)) throw new Error(`${file}: not a SafetensorsError: ${String(error)}`, { cause: error })
    return { ok: false, error }
  }
}

function checkConsistent(read: Safetensors, bytes: Uint8Array): void {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true))
  let total = 0
  let position = 0
  for (const tensor of read.tensors.values()) {
    const elements = tensor.shape.reduce((a, b) => a * b, 1)
    expect(tensor.data.length * 8).toBe(elements * dtypeBits[tensor.dtype])
    expect(tensor.dataOffsets[0]).toBe(position)
    position = tensor.dataOffsets[1]
    total += tensor.data.length
  }
  expect(8 + n + total).toBe(bytes.length)
  if (read.metadata) for (const value of Object.values(read.metadata)) expect(typeof value).toBe('string')
}

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'attune-safetensors-fuzz-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('safetensors fuzzing', () => {
  it('3000 mutated files: a consistent file or a documented error, quickly', async () => {
    const rng = random(20250611)
    const counts = new Map<string, number>()
    let slowest = 0
    for (let i = 0; i < 3000; i++) {
      const seed = seeds[i % seeds.length]!
      const bytes = rng.next() < 0.5 ? mutateHeader(rng, seed) : mutateBytes(rng, seed)
      const file = `fuzz-${i}.safetensors`
      const started = performance.now()
      const outcome = attempt(bytes, file)
      slowest = Math.max(slowest, performance.now() - started)
      if (outcome.ok) {
        checkConsistent(outcome.read, bytes)
        // What was read writes back and reads again the same.
        const again = parseSafetensors(serializeSafetensors(outcome.read.tensors, outcome.read.metadata), 'again')
        expect([...again.tensors.keys()].sort()).toEqual([...outcome.read.tensors.keys()].sort())
        counts.set('ok', (counts.get('ok') ?? 0) + 1)
      } else {
        const { error } = outcome
        expect(documented, `${file}: ${error.message}`).toContain(error.code)
        expect(error.file).toBe(file)
        expect(error.message.startsWith(`${file}: `), error.message).toBe(true)
        if (error.tensor !== undefined) expect(error.message).toContain(JSON.stringify(error.tensor).slice(0, 100))
        counts.set(error.code, (counts.get(error.code) ?? 0) + 1)
      }
      if (i % 10 === 0) {
        const path = join(dir, file)
        writeFileSync(path, bytes)
        const header = await readSafetensorsHeader(path).then(
          () => 'ok',
          (error: unknown) => (error instanceof SafetensorsError ? error.code : `not a SafetensorsError: ${String(error)}`),
        )
        expect(header, file).toBe(outcome.ok ? 'ok' : outcome.error.code)
        rmSync(path)
      }
    }
    expect(slowest).toBeLessThan(250)
    // The mutations reach every check, and some files survive them.
    expect(counts.get('ok') ?? 0).toBeGreaterThan(30)
    for (const code of documented) expect(counts.get(code) ?? 0, `${code} never happened: ${JSON.stringify([...counts])}`).toBeGreaterThan(0)
  })
})
