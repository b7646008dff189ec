// `attune train` in the worker: read and encode the dataset (every problem reported before any
// training), create the adapters (fresh, from --init-adapter, or from the last checkpoint with
// --resume), then run the optimizer steps of the plan, writing metrics.jsonl, checkpoints and
// finally the PEFT adapter into the output folder.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ApiError } from '../../contract/errors'
import { adapterScaling, makeAdapterConfig } from '../../domain/adapter/config'
import { readAdapter, writeAdapterFiles, type AdapterTensor } from '../../domain/adapter/files'
import { adapterTensorName, parseAdapterTensorName, type ModelShape, type TargetModule } from '../../domain/adapter/names'
import { encodeRecord, EncodeError } from '../../domain/dataset/encode'
import { readDatasetFile } from '../../domain/dataset/read'
import { describeProblem } from '../../domain/dataset/types'
import { TrainingConfig } from '../../domain/training/config'
import { planSteps, plannedSteps } from '../../domain/training/plan'
import { learningRate } from '../../domain/training/schedule'
import { epochOrder } from '../../domain/training/shuffle'
import type { EngineAddon, NativeCancelToken, NativeModel, NativeModelInfo, NativeTrainer } from '../addon'
import { chooseDevice } from '../device'
import { inferenceAdapter } from '../inference-adapter'
import { applyAdapter, useModel } from '../loaded-model'
import type { ParsedParamsOf, ProgressOf, ResultOf } from '../protocol'
import { latestCheckpoint, restoreCheckpoint, saveCheckpoint } from './checkpoint'

const listedProblems = 5

interface Example {
  ids: Int32Array
  labels: Int32Array
  /** Positions scored: labels[t+1] ≠ −100. */
  targets: number
  tokens: number
}

function modelShape(info: NativeModelInfo): ModelShape {
  return { layers: info.layers, hidden: info.hiddenSize, intermediate: info.intermediateSize, heads: info.heads, kvHeads: info.kvHeads, headDim: info.headDim }
}

function problemList(file: string, problems: string[], total: number): string {
  const more = total > problems.length ? `\n…and ${total - problems.length} more (attune check-data lists them all)` : ''
  return `${file} has problems to fix before training:\n${problems.join('\n')}${more}`
}

/** Reads and encodes every record; any problem stops the run here, before any training. */
async function readExamples(dataFile: string, format: ParsedParamsOf<'train'>['format'], encode: Parameters<typeof encodeRecord>[1]): Promise<Example[]> {
  const data = await readDatasetFile(dataFile, { format })
  if (data.problems.length) throw new ApiError('USER_ERROR', problemList(dataFile, data.problems.slice(0, listedProblems).map(describeProblem), data.problems.length))
  if (data.records.length === 0) throw new ApiError('USER_ERROR', `${dataFile} holds no records to train on.`)
  const examples: Example[] = []
  const problems: string[] = []
  for (const { record, ...location } of data.records) {
    try {
      const encoded = encodeRecord(record, encode)
      const targets = encoded.labels.slice(1).filter((label) => label !== -100).length
      if (targets === 0) problems.push(describeProblem({ ...location, message: `nothing to learn within --seq-len ${encode.seqLen} (no target tokens left)` }))
      examples.push({ ids: Int32Array.from(encoded.ids), labels: Int32Array.from(encoded.labels), targets, tokens: encoded.ids.length })
    } catch (error) {
      if (!(error instanceof EncodeError)) throw error
      problems.push(describeProblem({ ...location, message: error.message }))
    }
  }
  if (problems.length) throw new ApiError('USER_ERROR', problemList(dataFile, problems.slice(0, listedProblems), problems.length))
  return examples
}

/**
 * Mean cross-entropy over the target tokens of `examples` with the adapters as trained so far:
 * applied to the model unmerged (no dropout), then removed again.
 */
async function evaluateWith(
  model: NativeModel,
  trainer: NativeTrainer,
  settings: { rank: number; scaling: number; dora: boolean },
  examples: Example[],
  cancel: NativeCancelToken,
): Promise<number> {
  model.setAdapter(inferenceAdapter(adapterTensors(trainer), settings))
  try {
    let sum = 0
    let count = 0
    for (const example of examples) {
      const loss = await model.sequenceLoss(example.ids, example.labels, cancel)
      sum += loss.sum
      count += loss.count
    }
    return sum / count
  } finally {
    model.clearAdapter()
  }
}

/**
 * Runs a write into the output folder; a full disk becomes a plain error that says what was kept
 * (the writes are atomic: the previous checkpoint and files are intact) and how to go on.
 */
async function diskFullExplained(outDir: string, what: string, write: () => Promise<void>): Promise<void> {
  try {
    await write()
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code !== 'ENOSPC' && code !== 'EDQUOT') throw error
    throw new ApiError('USER_ERROR', `The disk holding ${outDir} is full, so ${what} could not be saved; earlier checkpoints are intact. Free some space and run the same command with --resume.`)
  }
}

/** The trained tensors as an adapter folder's content. */
function adapterTensors(trainer: NativeTrainer): AdapterTensor[] {
  return trainer.parameters().map((p) => {
    const parsed = parseAdapterTensorName(p.name)
    if (!parsed) throw new ApiError('INTERNAL', `The engine named a tensor "${p.name}", which is not a PEFT adapter key`)
    return { ...parsed, shape: p.shape, data: p.data }
  })
}

export async function train(
  addon: EngineAddon,
  params: ParsedParamsOf<'train'>,
  onProgress: (progress: ProgressOf<'train'>) => void,
  cancel: NativeCancelToken,
): Promise<ResultOf<'train'>> {
  // dryRun is the engine's, not a training option: the strict config schema never sees it.
  const { dryRun, ...trainingOptions } = params.options
  const parsedConfig = TrainingConfig.safeParse(trainingOptions)
  if (!parsedConfig.success) throw new ApiError('USER_ERROR', parsedConfig.error.issues.map((issue) => issue.message).join('; '))
  const config = parsedConfig.data
  onProgress({ phase: 'loading', step: 0, totalSteps: 0 })
  // qlora/qdora train against the NF4 double-quantized base (an `attune quantize` checkpoint is one already).
  const fourBit = config.method === 'qlora' || config.method === 'qdora'
  const loaded = await useModel(addon, params.modelDir, params.threads, { quantizeNf4: fourBit })
  await applyAdapter(loaded, undefined)
  const info = loaded.native.info()
  const shape = modelShape(info)

  // The adapter's settings: from --init-adapter's files when given (cli.md), else the options.
  const init = config.initAdapter ? await readAdapter(config.initAdapter, shape) : null
  const adapter = init
    ? { rank: init.config.r, alpha: init.config.lora_alpha, targets: init.config.target_modules as TargetModule[], dora: init.config.use_dora, rslora: init.config.use_rslora }
    : { rank: config.rank, alpha: config.alpha, targets: config.targets, dora: config.method === 'dora' || config.method === 'qdora', rslora: config.rslora }

  const encode = { tokenizer: loaded.tokenizer, template: loaded.template, seqLen: config.seqLen }
  const examples = await readExamples(params.dataFile, params.format, encode)
  // --eval-data: the same checks up front; its loss is measured every checkpoint (else every epoch) and at the end.
  const evalExamples = config.evalData ? await readExamples(config.evalData, 'auto', encode) : null
  const plan = planSteps(examples.length, config)
  const { device, notice } = chooseDevice(params.device, (await addon.systemInfo()).cuda, 'Training')
  onProgress({ phase: 'loading', step: 0, totalSteps: plan.totalSteps, device, ...(notice ? { notice } : {}) })
  const trainer = addon.createTrainer(loaded.native, {
    // A dry run plans for the device without touching it.
    device: dryRun === true ? 'cpu' : device,
    ...adapter,
    dropout: config.dropout,
    seed: config.seed,
    gradientCheckpointing: true,
    threads: loaded.threads,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: config.weightDecay,
  })
  if (init) for (const t of init.tensors) trainer.setParameter(adapterTensorName(t.layer, t.module, t.kind), t.shape, t.data)
  if (dryRun === true) {
    // The plan at the longest sequence the run would train on; nothing is trained or written.
    const seqLen = Math.max(2, ...examples.map((example) => example.tokens))
    return { outDir: params.outDir, steps: plan.totalSteps, records: examples.length, finalLoss: null, tokens: 0, memoryPlan: { ...trainer.memoryPlan(seqLen, device), seqLen, device } }
  }

  // What must not change between a run and its resume (the --resume flag itself may).
  const settings: Record<string, unknown> = { ...config, resume: undefined, modelDir: loaded.dir, dataFile: params.dataFile, format: params.format, adapter }
  mkdirSync(params.outDir, { recursive: true })
  const metricsFile = join(params.outDir, 'metrics.jsonl')
  let startStep = 0
  if (config.resume) {
    const step = latestCheckpoint(params.outDir)
    if (step === null) throw new ApiError('USER_ERROR', `${params.outDir} has no checkpoint to resume from; train without --resume, or with --checkpoint-every N.`)
    await restoreCheckpoint(params.outDir, step, settings, trainer)
    startStep = step
    // Steps after the checkpoint are trained again: keep only the metrics up to it.
    const kept = existsSync(metricsFile)
      ? readFileSync(metricsFile, 'utf8').split('\n').filter((line) => line && (JSON.parse(line) as { step: number }).step <= step)
      : []
    writeFileSync(metricsFile, kept.map((line) => line + '\n').join(''))
  } else {
    writeFileSync(metricsFile, '')
  }

  const started = performance.now()
  let lastLoss: number | null = null
  let tokensSeen = 0
  const orders = new Map<number, Uint32Array>()
  for (const planned of plannedSteps(plan, startStep)) {
    if (cancel.cancelled) throw new ApiError('CANCELLED', `Training stopped after step ${planned.step}; resume it with --resume${config.checkpointEvery ? '' : ' (checkpoints need --checkpoint-every)'}.`)
    if (!orders.has(planned.epoch)) orders.set(planned.epoch, epochOrder(examples.length, config, planned.epoch))
    const order = orders.get(planned.epoch)!
    const batch = planned.batches.flatMap(([start, end]) => Array.from(order.subarray(start, end), (index) => examples[index]!))
    const targets = batch.reduce((sum, example) => sum + example.targets, 0)
    const stepStart = performance.now()
    let lossSum = 0
    let tokens = 0
    for (const [k, example] of batch.entries()) {
      // Numbered by position in the run, so a resumed run draws the same dropout masks.
      const sample = planned.step * config.batchSize * config.gradAccum + k
      const result = await trainer.accumulate(example.ids, example.labels, 1 / targets, sample)
      lossSum += result.lossSum
      tokens += example.tokens
    }
    const lr = learningRate(planned.step, config, plan.totalSteps)
    const { gradNorm } = await trainer.step(lr, config.maxGradNorm)
    const step = planned.step + 1
    const seconds = (performance.now() - stepStart) / 1000
    lastLoss = lossSum / targets
    tokensSeen += tokens
    const metrics = {
      step,
      loss: lastLoss,
      lr,
      grad_norm: gradNorm,
      tokens,
      tokens_per_s: seconds > 0 ? tokens / seconds : 0,
      elapsed_s: (performance.now() - started) / 1000,
      mem_bytes: process.memoryUsage().rss,
    }
    const evalEvery = config.checkpointEvery ?? plan.stepsPerEpoch
    const evalLoss = evalExamples && (step % evalEvery === 0 || step === plan.totalSteps) ? await evaluateWith(loaded.native, trainer, { rank: adapter.rank, scaling: adapterScaling({ r: adapter.rank, lora_alpha: adapter.alpha, use_rslora: adapter.rslora }), dora: adapter.dora }, evalExamples, cancel) : undefined
    const line = JSON.stringify(evalLoss === undefined ? metrics : { ...metrics, eval_loss: evalLoss }) + '\n'
    await diskFullExplained(params.outDir, 'the metrics', async () => appendFileSync(metricsFile, line))
    if (config.checkpointEvery && step % config.checkpointEvery === 0 && step < plan.totalSteps) {
      await diskFullExplained(params.outDir, `checkpoint ${step}`, () => saveCheckpoint(params.outDir, step, settings, trainer))
    }
    onProgress({
      phase: 'training',
      step,
      totalSteps: plan.totalSteps,
      loss: lastLoss,
      lr,
      gradNorm,
      tokens,
      tokensPerS: metrics.tokens_per_s,
      elapsedS: metrics.elapsed_s,
      memBytes: metrics.mem_bytes,
      ...(evalLoss === undefined ? {} : { evalLoss }),
    })
  }

  onProgress({ phase: 'saving', step: plan.totalSteps, totalSteps: plan.totalSteps })
  await diskFullExplained(params.outDir, 'the adapter', () =>
    writeAdapterFiles(
      params.outDir,
      {
        config: makeAdapterConfig({ ...adapter, useDora: adapter.dora, useRslora: adapter.rslora, dropout: config.dropout, baseModel: loaded.dir }),
        tensors: adapterTensors(trainer),
      },
      shape,
    ),
  )
  return { outDir: params.outDir, steps: plan.totalSteps, records: examples.length, finalLoss: lastLoss, tokens: tokensSeen }
}
