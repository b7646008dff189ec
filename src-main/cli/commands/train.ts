import { createHash } from 'node:crypto'
import { closeSync, createReadStream, fstatSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { ApiError } from '../../contract/errors'
import type { TrainProgress } from '../../engine/protocol'
import type { Command, OptionSpec } from '../command'
import { formatOption, requireString, whileInterruptible } from '../options'
import { UserError } from '../user-error'

/** cli.md's training flags → the option names of domain/training/config.ts. */
const trainingFlags: Record<string, { key: string; type: 'string' | 'boolean' }> = {
  method: { key: 'method', type: 'string' },
  rank: { key: 'rank', type: 'string' },
  alpha: { key: 'alpha', type: 'string' },
  dropout: { key: 'dropout', type: 'string' },
  targets: { key: 'targets', type: 'string' },
  rslora: { key: 'rslora', type: 'boolean' },
  lr: { key: 'lr', type: 'string' },
  'lr-schedule': { key: 'lrSchedule', type: 'string' },
  'warmup-steps': { key: 'warmupSteps', type: 'string' },
  'weight-decay': { key: 'weightDecay', type: 'string' },
  'max-grad-norm': { key: 'maxGradNorm', type: 'string' },
  epochs: { key: 'epochs', type: 'string' },
  steps: { key: 'steps', type: 'string' },
  'batch-size': { key: 'batchSize', type: 'string' },
  'grad-accum': { key: 'gradAccum', type: 'string' },
  'seq-len': { key: 'seqLen', type: 'string' },
  seed: { key: 'seed', type: 'string' },
  'init-adapter': { key: 'initAdapter', type: 'string' },
  'eval-data': { key: 'evalData', type: 'string' },
  'checkpoint-every': { key: 'checkpointEvery', type: 'string' },
  resume: { key: 'resume', type: 'boolean' },
}

const options: OptionSpec = {
  model: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  format: { type: 'string', default: 'auto' },
  'no-shuffle': { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  ...Object.fromEntries(Object.entries(trainingFlags).map(([flag, { type }]) => [flag, { type }])),
}

/** sha256 of a file, streamed (datasets can be large). */
function sha256File(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const hash = createHash('sha256')
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolvePromise(hash.digest('hex')))
      .on('error', reject)
  })
}

/**
 * A fingerprint of the base model that does not read gigabytes of weights: config.json and each
 * weights file's name, size and safetensors header (which holds every tensor's name, dtype, shape
 * and offsets).
 */
function modelFingerprint(dir: string): string {
  const hash = createHash('sha256')
  hash.update(readFileSync(join(dir, 'config.json')))
  for (const name of readdirSync(dir).filter((file) => file.endsWith('.safetensors')).sort()) {
    const fd = openSync(join(dir, name), 'r')
    try {
      const length = Buffer.alloc(8)
      readSync(fd, length, 0, 8, 0)
      const header = Buffer.alloc(Math.min(100_000_000, Number(length.readBigUInt64LE(0))))
      readSync(fd, header, 0, header.length, 8)
      hash.update(name).update(String(fstatSync(fd).size)).update(header)
    } finally {
      closeSync(fd)
    }
  }
  return hash.digest('hex')
}

/** 1536 → "1.5 KiB". */
function humanBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit += 1
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`
}

export const trainCommand: Command = {
  name: 'train',
  summary: 'Train a LoRA, DoRA, QLoRA or QDoRA adapter on a dataset',
  usage:
    'attune train --model <dir> --data <file> --method lora|dora|qlora|qdora --out <dir> [--rank 16 --alpha 32 --dropout 0.05 --targets all-linear --rslora] [--lr 2e-4 --lr-schedule cosine --warmup-steps 0 --weight-decay 0 --max-grad-norm 1.0] [--epochs 1 | --steps N] [--batch-size 1 --grad-accum 1 --seq-len 2048 --seed 42 --no-shuffle] [--init-adapter DIR] [--checkpoint-every N] [--resume] [--dry-run]',
  options,
  async run(context) {
    const modelDir = resolve(requireString(context.options, 'model'))
    const dataFile = resolve(requireString(context.options, 'data'))
    const outDir = resolve(requireString(context.options, 'out'))
    const format = formatOption(context.options)
    const trainingOptions: Record<string, unknown> = {}
    for (const [flag, { key }] of Object.entries(trainingFlags)) {
      const value = context.options[flag]
      if (value !== undefined) trainingOptions[key] = value
    }
    if (context.options['no-shuffle'] === true) trainingOptions.shuffle = false
    if (typeof trainingOptions.initAdapter === 'string') trainingOptions.initAdapter = resolve(trainingOptions.initAdapter)
    if (trainingOptions.method === undefined) throw new UserError('--method is required: lora, dora, qlora or qdora.')

    if (context.options['dry-run'] === true) {
      // The memory plan only: no run in the database, nothing trained or written.
      const { engine } = context.services()
      const result = await whileInterruptible((signal) =>
        engine.call('train', { modelDir, dataFile, format, outDir, device: context.device, options: { ...trainingOptions, dryRun: true } }, { signal, onProgress: (p) => { if (p.notice) context.err(p.notice) } }),
      )
      const plan = result.memoryPlan
      if (!plan) throw new ApiError('INTERNAL', 'The engine returned no memory plan for --dry-run')
      if (context.json) {
        context.out(JSON.stringify({ dryRun: true, records: result.records, steps: result.steps, memoryPlan: plan }))
        return
      }
      const parts = ['weights', 'adapters', 'gradients', 'optimizer', 'activations', 'workspace', 'total'] as const
      context.out(`Memory plan on the ${plan.device === 'cuda' ? 'GPU' : 'CPU'} for ${result.records} records, sequences of up to ${plan.seqLen} tokens (${result.steps} steps):`)
      for (const part of parts) context.out(`${part.padEnd(12)} ${humanBytes(plan[part]).padStart(10)}`)
      return
    }

    let dataHash: string
    let modelHash: string
    try {
      dataHash = await sha256File(dataFile)
      modelHash = modelFingerprint(modelDir)
    } catch (error) {
      throw new UserError(`Cannot read ${(error as NodeJS.ErrnoException).path ?? 'the input'}: ${(error as Error).message}`)
    }

    const { engine, database } = context.services()
    const run = database.runs.createRun({
      name: basename(outDir),
      method: trainingOptions.method as 'lora' | 'dora' | 'qlora' | 'qdora',
      config: { ...trainingOptions, device: context.device, modelDir, modelHash, dataFile, dataHash, format },
      outDir,
    })
    database.runs.updateRunStatus(run.id, 'running')
    const report = (p: TrainProgress) => {
      if (p.notice) context.err(p.notice)
      if (p.phase !== 'training' || p.loss === undefined) return
      database.runs.appendMetric(run.id, {
        step: p.step,
        loss: p.loss,
        lr: p.lr ?? 0,
        gradNorm: p.gradNorm ?? null,
        tokens: p.tokens ?? 0,
        tokensPerS: p.tokensPerS ?? 0,
        elapsedS: p.elapsedS ?? 0,
        memBytes: p.memBytes ?? 0,
        evalLoss: p.evalLoss ?? null,
      })
      const evalPart = p.evalLoss === undefined ? '' : `  eval loss ${p.evalLoss.toFixed(4)}`
      context.err(`step ${p.step}/${p.totalSteps}  loss ${p.loss.toFixed(4)}${evalPart}  lr ${(p.lr ?? 0).toExponential(2)}  ${Math.round(p.tokensPerS ?? 0)} tokens/s`)
    }
    try {
      const result = await whileInterruptible((signal) =>
        engine.call('train', { modelDir, dataFile, format, outDir, device: context.device, options: trainingOptions }, { signal, onProgress: report }),
      )
      database.runs.updateRunStatus(run.id, 'completed')
      context.out(context.json ? JSON.stringify({ runId: run.id, ...result }) : `Adapter saved in ${result.outDir} (${result.steps} steps, final loss ${result.finalLoss?.toFixed(4) ?? '-'}).`)
    } catch (error) {
      const cancelled = error instanceof ApiError && error.code === 'CANCELLED'
      database.runs.updateRunStatus(run.id, cancelled ? 'cancelled' : 'failed', (error as Error).message)
      throw error
    }
  },
}
