// generate and evaluate end to end (tokenizer → worker process → native engine → streamed text)
// against transformers' own outputs on the golden models (test/golden).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, inject, it } from 'vitest'
import { ApiError } from '../../src-main/contract/errors'
import { EngineHost, forkSpawner } from '../../src-main/engine/host'
import { goldenDir, goldenFixtures, goldenReference, itFindsTheGoldenFixtures } from './support/golden'

// llama_sharded holds llama's weights and references: the C++ tests cover its loading.
const fixtures = goldenFixtures.filter((name) => name !== 'llama_sharded')
itFindsTheGoldenFixtures()

interface Reference {
  forward: { text: string; input_ids: number[]; loss: number }
  greedy: Array<{ prompt: string; new_ids: number[]; new_text: string; eos_ids_generated: number[] }>
}

const host = new EngineHost({ spawner: forkSpawner(inject('engineWorkerPath')) })
const scratch = mkdtempSync(join(tmpdir(), 'attune-golden-'))
afterAll(async () => {
  await host.dispose()
  rmSync(scratch, { recursive: true, force: true })
})

describe.each(fixtures)('%s', (name) => {
  const modelDir = join(goldenDir, name)
  const ref = goldenReference<Reference>(name)

  it('streams the same greedy continuation as transformers', async () => {
    for (const greedy of ref.greedy) {
      // The reference ran past end-of-sequence; Attune stops there, so compare up to it.
      const stopAt = greedy.eos_ids_generated.length ? greedy.new_ids.findIndex((id) => greedy.eos_ids_generated.includes(id)) : -1
      const pieces: string[] = []
      const result = await host.call(
        'generate',
        { modelDir, input: { kind: 'prompt', text: greedy.prompt }, sampling: { maxNewTokens: greedy.new_ids.length } },
        { onProgress: ({ text }) => pieces.push(text) },
      )
      expect(result.text).toBe(pieces.join(''))
      if (stopAt < 0) {
        expect(result.finishReason).toBe('length')
        expect(result.completionTokens).toBe(greedy.new_ids.length)
        expect(result.text).toBe(greedy.new_text)
      } else {
        expect(result.finishReason).toBe('stop')
        expect(result.completionTokens).toBe(stopAt + 1)
      }
    }
  })

  it('measures the same loss as transformers', async () => {
    const dataFile = join(scratch, `${name}.jsonl`)
    writeFileSync(dataFile, JSON.stringify({ text: ref.forward.text }) + '\n')
    // Truncating at the reference's length makes the encoded ids exactly its input_ids.
    const result = await host.call('evaluate', { modelDir, dataFile, seqLen: ref.forward.input_ids.length })
    expect(result.tokens).toBe(ref.forward.input_ids.length - 1)
    expect(Math.abs(result.loss - ref.forward.loss) / ref.forward.loss).toBeLessThan(1e-5)
    expect(Math.abs(result.perplexity / Math.exp(ref.forward.loss) - 1)).toBeLessThan(1e-4)
    expect(result.truncated).toBe(1)
  })
})

describe('generation controls', () => {
  const modelDir = join(goldenDir, 'llama')

  it('gives the same sampled text for the same seed, and another for another seed', async () => {
    const sample = (seed: number) =>
      host.call('generate', { modelDir, input: { kind: 'prompt', text: 'Once upon a time' }, sampling: { maxNewTokens: 24, temperature: 1.5, seed } })
    const [a, b, c] = [await sample(1), await sample(1), await sample(2)]
    expect(a.text).toBe(b.text)
    expect(a.text).not.toBe(c.text)
  })

  it('answers a conversation through the chat template', async () => {
    const result = await host.call('generate', {
      modelDir: join(goldenDir, 'qwen2'),
      input: { kind: 'messages', messages: [{ role: 'user', content: 'Hello there' }] },
      sampling: { maxNewTokens: 8 },
    })
    expect(result.promptTokens).toBeGreaterThan(5)
    expect(result.completionTokens).toBeGreaterThan(0)
  })

  it('stops mid-answer when cancelled, and the engine stays usable', async () => {
    const controller = new AbortController()
    let pieces = 0
    const call = host.call(
      'generate',
      { modelDir, input: { kind: 'prompt', text: 'Once upon a time' }, sampling: { maxNewTokens: 100_000, temperature: 1, seed: 3 } },
      { signal: controller.signal, onProgress: () => ++pieces === 3 && controller.abort() },
    )
    await expect(call).rejects.toMatchObject({ code: 'CANCELLED' })
    const after = await host.call('generate', { modelDir, input: { kind: 'prompt', text: 'Hi' }, sampling: { maxNewTokens: 2 } })
    expect(after.completionTokens).toBe(2)
  })

  it('explains a folder that is not a model, naming the file', async () => {
    const error = await host.call('generate', { modelDir: scratch, input: { kind: 'prompt', text: 'Hi' }, sampling: {} }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect((error as ApiError).message).toMatch(/tokenizer\.json|config\.json/)
  })

  it('refuses a dataset with problems, naming the line', async () => {
    const dataFile = join(scratch, 'broken.jsonl')
    writeFileSync(dataFile, '{"text": "fine"}\n{"text": \n')
    const error = await host.call('evaluate', { modelDir, dataFile }).catch((e: unknown) => e)
    expect((error as ApiError).code).toBe('USER_ERROR')
    expect((error as ApiError).message).toContain('line 2')
  })
})
