// attune train --dry-run's engine side (worker process, native trainer): the data is read and
// encoded and the trainer created, then the memory plan comes back instead of a training run —
// every part positive, the total their sum, and nothing written into the output folder.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, inject, it } from 'vitest'
import { EngineHost, forkSpawner } from '../../src-main/engine/host'
import type { TrainProgress } from '../../src-main/engine/protocol'
import { goldenDir } from './support/golden'

const host = new EngineHost({ spawner: forkSpawner(inject('engineWorkerPath')) })
const scratch = mkdtempSync(join(tmpdir(), 'attune-train-plan-'))
afterAll(async () => {
  await host.dispose()
  rmSync(scratch, { recursive: true, force: true })
})

const dataFile = join(scratch, 'data.jsonl')
writeFileSync(
  dataFile,
  ['The quick brown fox jumps over the lazy dog.', 'Rain fell softly on the old stone bridge, and the river ran on below it.']
    .map((text) => JSON.stringify({ text }))
    .join('\n') + '\n',
)

const parts = ['weights', 'adapters', 'gradients', 'optimizer', 'activations', 'workspace'] as const

function dryRun(model: string, outDir: string, extra: Record<string, unknown> = {}, device: 'auto' | 'cpu' | 'cuda' = 'cpu', onProgress?: (p: TrainProgress) => void) {
  return host.call('train', { modelDir: join(goldenDir, model), dataFile, outDir, device, options: { method: 'lora', rank: 4, alpha: 8, steps: 3, dryRun: true, ...extra } }, { onProgress })
}

describe('train --dry-run', () => {
  it('returns the memory plan and trains nothing', async () => {
    const outDir = join(scratch, 'llama-lora')
    const result = await dryRun('llama', outDir)
    expect(result).toMatchObject({ records: 2, steps: 3, finalLoss: null, tokens: 0 })
    const plan = result.memoryPlan!
    expect(plan).toBeDefined()
    for (const part of parts) expect(plan[part]).toBeGreaterThan(0)
    expect(plan.total).toBe(parts.reduce((sum, part) => sum + plan[part], 0))
    expect(plan.seqLen).toBeGreaterThan(2)
    expect(existsSync(join(outDir, 'metrics.jsonl'))).toBe(false)
    expect(existsSync(join(outDir, 'adapter_model.safetensors'))).toBe(false)
    expect(existsSync(outDir) ? readdirSync(outDir) : []).toEqual([])
  })

  it('plans more for DoRA, a 4-bit base and longer sequences', async () => {
    const lora = (await dryRun('qwen3', join(scratch, 'a'))).memoryPlan!
    const dora = (await dryRun('qwen3', join(scratch, 'b'), { method: 'dora' })).memoryPlan!
    const qlora = (await dryRun('qwen3', join(scratch, 'c'), { method: 'qlora' })).memoryPlan!
    const short = (await dryRun('qwen3', join(scratch, 'd'), { seqLen: 6 })).memoryPlan!
    expect(dora.adapters).toBeGreaterThan(lora.adapters)
    expect(qlora.weights).toBeGreaterThan(lora.weights)
    expect(short.seqLen).toBeLessThan(lora.seqLen)
    expect(short.activations).toBeLessThan(lora.activations)
    for (const dir of ['a', 'b', 'c', 'd']) expect(existsSync(join(scratch, dir, 'metrics.jsonl'))).toBe(false)
  })

  // This machine has no usable GPU (CI never has one): auto says so, cuda refuses with the way out.
  it('plans on the CPU when auto finds no usable GPU, and says why', async () => {
    const system = await host.call('systemInfo', {})
    if (system.cuda.usable) return // a GPU machine: auto plans for the GPU, checked by the GPU tests
    const notices: string[] = []
    const result = await dryRun('llama', join(scratch, 'auto'), {}, 'auto', (p) => {
      if (p.notice) notices.push(p.notice)
    })
    expect(result.memoryPlan?.device).toBe('cpu')
    expect(notices).toEqual([`Training runs on the CPU: ${system.cuda.reason}.`])
  })

  it('refuses --device cuda without a usable GPU, naming the reason and the way out', async () => {
    const system = await host.call('systemInfo', {})
    if (system.cuda.usable) return
    await expect(dryRun('llama', join(scratch, 'cuda'), {}, 'cuda')).rejects.toMatchObject({
      code: 'USER_ERROR',
      message: `Training on the GPU is not possible here: ${system.cuda.reason}. Use --device cpu (or auto) to run on the CPU.`,
    })
  })
})
