// Fuzzing the dataset reader: random bytes and mutated JSONL, JSON arrays and CSV, with a fixed
// seed. Whatever comes in, reading returns records and problems (never throws anything else),
// finishes quickly, gives every problem a place and a sentence, and never drops a line silently.
import { describe, expect, it } from 'vitest'
import { LineSplitter, splitLines } from '../../src-main/domain/dataset/lines'
import { readDatasetBytes, type DatasetReadResult } from '../../src-main/domain/dataset/read'
import type { FormatChoice } from '../../src-main/domain/dataset/types'
import { random, type Random } from './support/random'


const encoder = new TextEncoder()
const pieces = ['{', '}', '[', ']', '"', '\\', ',', ':', '\n', '\r\n', '\r', ' ', '\t', '""', '\\"', '\ufeff', 'é', '🙂', '\u0000', 'null', 'true', '1e5', '-0']

const jsonlSeed = () =>
  [
    { text: 'Hello, "world"' },
    { messages: [{ role: 'user', content: 'Hi\nthere' }, { role: 'assistant', content: 'Hello 🙂' }] },
    { prompt: 'a', completion: 'b' },
    { instruction: 'Do it', input: '', output: 'Done' },
    { conversations: [{ from: 'human', value: 'x' }, { from: 'gpt', value: 'y' }] },
  ]
    .map((record) => JSON.stringify(record))
    .join('\n') + '\n'
const arraySeed = () => JSON.stringify([{ text: 'a ] } ,' }, { text: 'b\\"c' }, { text: 'd' }], null, 2)
const csvSeed = () => 'instruction,input,output\r\n"Sum, please","1\n2","It is ""3"""\r\nName one,,Blue\r\nx;y,"",z\r\n'

function mutate(rng: Random, bytes: Uint8Array): Uint8Array {
  const out = [...bytes]
  const edits = 1 + rng.int(6)
  for (let i = 0; i < edits; i++) {
    const at = rng.int(out.length + 1)
    switch (rng.int(5)) {
      case 0: // flip a byte
        if (out.length > 0) out[Math.min(at, out.length - 1)] = rng.int(256)
        break
      case 1: // delete a run
        out.splice(at, 1 + rng.int(8))
        break
      case 2: // insert a syntax piece
        out.splice(at, 0, ...encoder.encode(rng.pick(pieces)))
        break
      case 3: // insert random bytes (invalid UTF-8 often)
        out.splice(at, 0, ...Array.from({ length: 1 + rng.int(4) }, () => rng.int(256)))
        break
      case 4: // cut the file short
        out.length = Math.min(out.length, at)
        break
    }
  }
  return new Uint8Array(out)
}

function input(rng: Random): { bytes: Uint8Array; name: string } {
  const kind = rng.int(4)
  if (kind === 0) return { bytes: new Uint8Array(Array.from({ length: rng.int(300) }, () => rng.int(256))), name: rng.pick(['x.jsonl', 'x.json', 'x.csv', 'x.txt', 'x']) }
  const seed = kind === 1 ? jsonlSeed() : kind === 2 ? arraySeed() : csvSeed()
  return { bytes: mutate(rng, encoder.encode(seed)), name: kind === 1 ? 'x.jsonl' : kind === 2 ? 'x.json' : rng.pick(['x.csv', 'x.tsv', 'x.txt']) }
}

function checkShape(result: DatasetReadResult): void {
  for (const problem of result.problems) {
    expect(['line', 'row', 'record', 'file']).toContain(problem.unit)
    expect(Number.isInteger(problem.line) && problem.line >= 0).toBe(true)
    expect(problem.unit === 'file' ? problem.line === 0 : problem.line >= 1).toBe(true)
    expect(typeof problem.message).toBe('string')
    expect(problem.message.length).toBeGreaterThan(5)
  }
  for (const { record, line } of result.records) {
    expect(line).toBeGreaterThanOrEqual(1)
    if (record.kind === 'text') expect(record.text.trim()).not.toBe('')
    if (record.kind === 'prompt-completion') expect(record.prompt.trim() && record.completion.trim()).toBeTruthy()
    if (record.kind === 'messages') {
      expect(record.messages.some((message) => message.role === 'assistant')).toBe(true)
      for (const message of record.messages) expect(message.content.trim()).not.toBe('')
    }
  }
}

const formats: FormatChoice[] = ['auto', 'auto', 'auto', 'text', 'messages', 'alpaca', 'sharegpt', 'prompt-completion', 'csv']

describe('fuzzing the reader', () => {
  it('survives 2000 random and mutated files', () => {
    const rng = random(20240611)
    const started = performance.now()
    for (let i = 0; i < 2000; i++) {
      const { bytes, name } = input(rng)
      const format = rng.pick(formats)
      let result: DatasetReadResult
      try {
        result = readDatasetBytes(bytes, name, { format })
      } catch (error) {
        throw new Error(`case ${i} (${name}, --format ${format}) threw: ${String(error)}\n${JSON.stringify(new TextDecoder().decode(bytes))}`, { cause: error })
      }
      checkShape(result)
      // A JSONL file read with a chosen format accounts for every line: a record or a problem.
      if (result.fileKind === 'jsonl' && format !== 'auto' && format !== 'csv') {
        const lines = splitLines(bytes).length
        const seen = new Set([...result.records.map((r) => r.line), ...result.problems.filter((p) => p.unit === 'line').map((p) => p.line)])
        expect(seen.size, `case ${i}: every one of the ${lines} lines is a record or a problem`).toBe(lines)
      }
      // A CSV with a usable header accounts for every row after it.
      if (result.fileKind === 'csv' && result.recordFormat !== null) {
        const rows = new Set([...result.records.map((r) => r.line), ...result.problems.filter((p) => p.unit === 'row').map((p) => p.line)])
        const last = Math.max(1, ...rows)
        for (let row = 2; row <= last; row++) expect(rows.has(row), `case ${i}: row ${row}`).toBe(true)
      }
    }
    expect(performance.now() - started).toBeLessThan(20_000)
  })

  it('splits lines the same however the bytes arrive in chunks', () => {
    const rng = random(7)
    for (let i = 0; i < 300; i++) {
      const { bytes } = input(rng)
      const whole = splitLines(bytes)
      const splitter = new LineSplitter()
      const chunked = []
      let at = 0
      while (at < bytes.length) {
        const size = 1 + rng.int(12)
        chunked.push(...splitter.push(bytes.subarray(at, at + size)))
        at += size
      }
      chunked.push(...splitter.end())
      expect(chunked).toEqual(whole)
    }
  })
})
