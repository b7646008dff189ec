// A disk that fills up during training (a real, small tmpfs): the failed checkpoint leaves the
// previous one intact, the error says what to do, and --resume finishes the run exactly as an
// uninterrupted one. Needs permission to mount a tmpfs (root, as on CI); skipped otherwise.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, inject, it } from 'vitest'
import type { ApiError } from '../../src-main/contract/errors'
import { EngineHost, forkSpawner } from '../../src-main/engine/host'
import { goldenDir } from './support/golden'

const scratch = mkdtempSync(join(tmpdir(), 'attune-disk-'))
const mountPoint = join(scratch, 'small-disk')

function mount(options: string): boolean {
  return spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', mountPoint], { stdio: 'ignore' }).status === 0
}
const canMount = (() => {
  spawnSync('mkdir', ['-p', mountPoint])
  if (!mount('size=64k')) return false
  spawnSync('umount', [mountPoint])
  return true
})()

const host = new EngineHost({ spawner: forkSpawner(inject('engineWorkerPath')) })
afterAll(async () => {
  await host.dispose()
  spawnSync('umount', [mountPoint], { stdio: 'ignore' })
  rmSync(scratch, { recursive: true, force: true })
})

const modelDir = join(goldenDir, 'llama')
const dataFile = join(scratch, 'data.jsonl')
writeFileSync(dataFile, ['One two three four five.', 'Six seven eight nine ten.', 'A quiet river runs by.'].map((text) => JSON.stringify({ text })).join('\n') + '\n')
const options = { method: 'dora', rank: 4, alpha: 8, lr: 5e-3, steps: 4, checkpointEvery: 1, seed: 3 }
const train = (outDir: string, extra: Record<string, unknown> = {}) => host.call('train', { modelDir, dataFile, outDir, options: { ...options, ...extra } })

/** Bytes a folder takes on tmpfs: whole 4 KiB pages per file. */
function pagesOf(dir: string): number {
  return readdirSync(dir).reduce((sum, name) => sum + Math.ceil(statSync(join(dir, name)).size / 4096) * 4096, 0)
}

describe('a full disk during training', () => {
  it.runIf(canMount)('keeps the last checkpoint, explains, and --resume finishes the same run', async () => {
    const reference = join(scratch, 'reference')
    await train(reference)
    const checkpoint = pagesOf(join(reference, 'checkpoints', 'step-1'))

    // Room for the metrics and one checkpoint, not for the second one written beside it.
    expect(mount(`size=${checkpoint + checkpoint / 2 + 16 * 1024}`)).toBe(true)
    const outDir = join(mountPoint, 'run')
    const error = (await train(outDir).catch((e: unknown) => e)) as ApiError
    expect(error.code).toBe('USER_ERROR')
    expect(error.message).toMatch(/is full.*--resume/)
    expect(readdirSync(join(outDir, 'checkpoints'))).toEqual(['step-1'])
    expect(readFileSync(join(outDir, 'checkpoints', 'step-1', 'adapter_model.safetensors')).equals(readFileSync(join(reference, 'checkpoints', 'step-1', 'adapter_model.safetensors')))).toBe(true)

    expect(spawnSync('mount', ['-o', 'remount,size=32m', mountPoint]).status).toBe(0)
    await train(outDir, { resume: true })
    expect(readFileSync(join(outDir, 'adapter_model.safetensors')).equals(readFileSync(join(reference, 'adapter_model.safetensors')))).toBe(true)
  })
})
