// attune train's engine side end to end (worker process, native trainer, files): a run killed at
// any moment resumes bit for bit, a resume with other settings is refused, --init-adapter
// continues an adapter (and refuses one for another model), and bad data stops the run before it
// starts, naming the line.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, inject, it } from 'vitest'
import { ApiError } from '../../src-main/contract/errors'
import { EngineHost, forkSpawner } from '../../src-main/engine/host'
import type { TrainProgress } from '../../src-main/engine/protocol'
import { goldenDir } from './support/golden'

const host = new EngineHost({ spawner: forkSpawner(inject('engineWorkerPath')) })
const scratch = mkdtempSync(join(tmpdir(), 'attune-train-'))
afterAll(async () => {
  await host.dispose()
  rmSync(scratch, { recursive: true, force: true })
})

const modelDir = join(goldenDir, 'llama')
const dataFile = join(scratch, 'data.jsonl')
writeFileSync(
  dataFile,
  [
    'The quick brown fox jumps over the lazy dog.',
    'Once upon a time there was a robot who wrote poems.',
    'Small models learn fast when the data is clean.',
    'Every morning the baker opens the shop at six.',
    'Rain fell softly on the old stone bridge.',
  ]
    .map((text) => JSON.stringify({ text }))
    .join('\n') + '\n',
)
// Shuffled, batched, accumulated, with dropout: every source of run-to-run state is in play.
const options = { method: 'dora', rank: 4, alpha: 8, dropout: 0.1, lr: 5e-3, steps: 6, batchSize: 2, gradAccum: 2, seed: 7, checkpointEvery: 1 }

function runTrain(outDir: string, extra: Record<string, unknown> = {}, onProgress?: (p: TrainProgress) => void) {
  return host.call('train', { modelDir, dataFile, outDir, options: { ...options, ...extra } }, onProgress ? { onProgress } : {})
}

const metricsOf = (dir: string) =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const { step, loss, lr, grad_norm } = JSON.parse(line) as { step: number; loss: number; lr: number; grad_norm: number }
      return { step, loss, lr, grad_norm }
    })

describe('train', () => {
  const straight = join(scratch, 'straight')

  it('trains, writing metrics, checkpoints and a PEFT adapter', async () => {
    const result = await runTrain(straight)
    expect(result).toMatchObject({ steps: 6, records: 5 })
    expect(metricsOf(straight).map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6])
    for (const file of ['adapter_config.json', 'adapter_model.safetensors', 'checkpoints/step-5/state.json']) expect(existsSync(join(straight, file))).toBe(true)
    const config = JSON.parse(readFileSync(join(straight, 'adapter_config.json'), 'utf8'))
    expect(config).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, use_dora: true })
  })

  it('resumes a run whose worker was killed mid-run, bit for bit', async () => {
    const interrupted = join(scratch, 'interrupted')
    const killed = runTrain(interrupted, {}, (p) => {
      if (p.step === 3 && host.pid) process.kill(host.pid, 'SIGKILL')
    })
    await expect(killed).rejects.toMatchObject({ code: 'ENGINE_UNAVAILABLE' })
    // It picks up after the last checkpoint rather than starting over (which would also match).
    const resumedSteps: number[] = []
    await runTrain(interrupted, { resume: true }, (p) => p.phase === 'training' && resumedSteps.push(p.step))
    expect(resumedSteps[0]).toBeGreaterThanOrEqual(3)
    expect(readFileSync(join(interrupted, 'adapter_model.safetensors')).equals(readFileSync(join(straight, 'adapter_model.safetensors')))).toBe(true)
    expect(metricsOf(interrupted)).toEqual(metricsOf(straight))
  })

  it('refuses to resume with other settings, naming them', async () => {
    const error = (await runTrain(straight, { resume: true, lr: 1e-3 }).catch((e: unknown) => e)) as ApiError
    expect(error.code).toBe('USER_ERROR')
    expect(error.message).toContain('lr')
  })

  it('continues from --init-adapter, and refuses an adapter made for another model', async () => {
    const continued = join(scratch, 'continued')
    await runTrain(continued, { initAdapter: straight, steps: 1, checkpointEvery: undefined })
    expect(JSON.parse(readFileSync(join(continued, 'adapter_config.json'), 'utf8'))).toMatchObject({ r: 4, use_dora: true })
    const foreign = join(scratch, 'foreign')
    await host.call('train', { modelDir: join(goldenDir, 'qwen3'), dataFile, outDir: foreign, options: { method: 'lora', rank: 2, steps: 1 } })
    const error = (await runTrain(join(scratch, 'mismatch'), { initAdapter: foreign, steps: 1 }).catch((e: unknown) => e)) as Error
    expect(error.message).toMatch(/different base model|inputs but this model/)
  })

  it('trains QLoRA and QDoRA against the NF4-quantized base (a different loss than the full-precision one)', async () => {
    const firstLoss = async (method: string) => {
      const outDir = join(scratch, `4bit-${method}`)
      await runTrain(outDir, { method, steps: 1, checkpointEvery: undefined, dropout: 0, shuffle: false })
      return { loss: metricsOf(outDir)[0]!.loss, config: JSON.parse(readFileSync(join(outDir, 'adapter_config.json'), 'utf8')) }
    }
    const [lora, qlora, qdora] = [await firstLoss('lora'), await firstLoss('qlora'), await firstLoss('qdora')]
    expect(qlora.config.use_dora).toBe(false)
    expect(qdora.config.use_dora).toBe(true)
    expect(qlora.loss).not.toBe(lora.loss)
    expect(Math.abs(qlora.loss - lora.loss) / lora.loss).toBeLessThan(0.1)
  })

  it('reports every data problem with its line before training', async () => {
    const bad = join(scratch, 'bad.jsonl')
    writeFileSync(bad, '{"text": "fine"}\n{"text": ""}\nnot json\n')
    const outDir = join(scratch, 'never')
    const error = (await host.call('train', { modelDir, dataFile: bad, outDir, options }).catch((e: unknown) => e)) as ApiError
    expect(error.code).toBe('USER_ERROR')
    expect(error.message).toMatch(/line 2/)
    expect(error.message).toMatch(/line 3/)
    expect(existsSync(join(outDir, 'metrics.jsonl'))).toBe(false)
  })
})

describe('a trained adapter at inference', () => {
  it('lowers the loss on its own training data, and switches off again without a reload', async () => {
    const trained = join(scratch, 'fit')
    await runTrain(trained, { method: 'lora', steps: 8, lr: 2e-2, dropout: 0, checkpointEvery: undefined })
    const base = await host.call('evaluate', { modelDir, dataFile })
    const withAdapter = await host.call('evaluate', { modelDir, adapterDir: trained, dataFile })
    const baseAgain = await host.call('evaluate', { modelDir, dataFile })
    expect(withAdapter.loss).toBeLessThan(base.loss * 0.9)
    expect(baseAgain.loss).toBe(base.loss)
    const text = (adapterDir?: string) =>
      host.call('generate', { modelDir, ...(adapterDir ? { adapterDir } : {}), input: { kind: 'prompt', text: 'The quick brown' }, sampling: { maxNewTokens: 6 } })
    expect((await text(trained)).text).not.toBe((await text()).text)
  })

  it('measures --eval-data during training, as eval measures the saved adapter', async () => {
    const outDir = join(scratch, 'with-eval')
    await runTrain(outDir, { evalData: dataFile, steps: 4, checkpointEvery: 2 })
    const lines = readFileSync(join(outDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { step: number; eval_loss?: number })
    expect(lines.filter((line) => line.eval_loss !== undefined).map((line) => line.step)).toEqual([2, 4])
    const saved = await host.call('evaluate', { modelDir, adapterDir: outDir, dataFile })
    expect(Math.abs(lines[3]!.eval_loss! - saved.loss)).toBeLessThan(1e-6 * saved.loss)
  })

  it('refuses an adapter made for another base model, saying so', async () => {
    const error = (await host.call('evaluate', { modelDir: join(goldenDir, 'qwen3'), adapterDir: join(scratch, 'fit'), dataFile }).catch((e: unknown) => e)) as ApiError
    expect(error.code).toBe('USER_ERROR')
    expect(error.message).toMatch(/different base model|inputs but this model|layers/)
  })
})
