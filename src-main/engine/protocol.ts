// The messages between the engine host (main process) and the engine worker (child process), and
// the table of engine methods. Both sides validate what they receive: the other end is a separate
// program that may be a different build, or may have crashed halfway through a message.
import { z } from 'zod'
import { ApiErrorShape } from '../contract/errors'
import { SystemInfo } from '../contract/system'
import { formatChoices } from '../domain/dataset/types'
import { QuantizeParams, QuantizeProgress, QuantizeResult } from './quantize-protocol'

export const CpuBenchmarkParams = z.strictObject({
  /** How long to measure; the benchmark checks for cancellation several times a second. */
  seconds: z.number().positive().max(600),
})
export const CpuBenchmarkProgress = z.object({
  /** Of the requested duration, 0..1. */
  fraction: z.number().min(0).max(1),
  /** Average fp32 GFLOP/s so far. */
  gflops: z.number().nonnegative(),
})
export const CpuBenchmarkResult = z.object({
  gflops: z.number().nonnegative(),
  iterations: z.number().int().nonnegative(),
  seconds: z.number().nonnegative(),
})
export type CpuBenchmarkParams = z.infer<typeof CpuBenchmarkParams>
export type CpuBenchmarkProgress = z.infer<typeof CpuBenchmarkProgress>
export type CpuBenchmarkResult = z.infer<typeof CpuBenchmarkResult>

/** Which loaded model a call uses; the worker keeps the last one loaded. */
const ModelChoice = {
  modelDir: z.string().min(1),
  /** CPU threads for the engine; all logical processors when left out. */
  threads: z.number().int().positive().max(1024).optional(),
}

export const SamplingOptions = z.strictObject({
  maxNewTokens: z.number().int().min(0).max(1_000_000).default(128),
  /** 0 is greedy and deterministic. */
  temperature: z.number().min(0).max(100).default(0),
  topP: z.number().gt(0).max(1).default(1),
  /** 0 means no limit. */
  topK: z.number().int().min(0).default(0),
  repetitionPenalty: z.number().positive().max(100).default(1),
  /** Fixes the sampling; a random seed is used when left out. */
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
})
export type SamplingOptions = z.input<typeof SamplingOptions>

export const ChatMessage = z.strictObject({ role: z.enum(['system', 'user', 'assistant']), content: z.string() })
export type ChatMessage = z.infer<typeof ChatMessage>

/** A PEFT adapter folder to apply, unmerged, on top of the model. */
const AdapterChoice = { adapterDir: z.string().min(1).optional() }

export const GenerateParams = z.strictObject({
  ...ModelChoice,
  ...AdapterChoice,
  /** A prompt is encoded with the tokenizer's own special tokens; messages through the chat template. */
  input: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('prompt'), text: z.string() }),
    z.strictObject({ kind: z.literal('messages'), messages: z.array(ChatMessage).min(1) }),
  ]),
  sampling: SamplingOptions,
})
/** New text since the last progress event (never half a character). */
export const GenerateProgress = z.object({ text: z.string() })
export const GenerateResult = z.object({
  text: z.string(),
  promptTokens: z.number().int().nonnegative(),
  completionTokens: z.number().int().nonnegative(),
  finishReason: z.enum(['stop', 'length', 'cancelled']),
  prefillMs: z.number().nonnegative(),
  decodeMs: z.number().nonnegative(),
})
export type GenerateResult = z.infer<typeof GenerateResult>

export const EvaluateParams = z.strictObject({
  ...ModelChoice,
  ...AdapterChoice,
  dataFile: z.string().min(1),
  format: z.enum(formatChoices).default('auto'),
  seqLen: z.number().int().positive().max(1_048_576).default(2048),
})
export const EvaluateProgress = z.object({ records: z.number().int().nonnegative(), totalRecords: z.number().int().nonnegative() })
export const EvaluateResult = z.object({
  /** Mean cross-entropy over target tokens. */
  loss: z.number(),
  tokens: z.number().int().nonnegative(),
  perplexity: z.number(),
  records: z.number().int().nonnegative(),
  truncated: z.number().int().nonnegative(),
})
export type EvaluateResult = z.infer<typeof EvaluateResult>

export const TrainParams = z.strictObject({
  ...ModelChoice,
  dataFile: z.string().min(1),
  format: z.enum(formatChoices).default('auto'),
  outDir: z.string().min(1),
  /** cli.md's --device: auto takes a usable GPU and says why not otherwise. */
  device: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
  /**
   * cli.md's training options (domain/training/config.ts validates them in the worker), plus
   * `dryRun: true`: plan the memory after reading the data and creating the trainer, train nothing.
   */
  options: z.record(z.string(), z.unknown()),
})
export const TrainProgress = z.object({
  phase: z.enum(['loading', 'training', 'saving']),
  /** Optimizer steps done. */
  step: z.number().int().nonnegative(),
  totalSteps: z.number().int().nonnegative(),
  loss: z.number().optional(),
  lr: z.number().optional(),
  gradNorm: z.number().optional(),
  tokens: z.number().int().nonnegative().optional(),
  tokensPerS: z.number().nonnegative().optional(),
  elapsedS: z.number().nonnegative().optional(),
  memBytes: z.number().nonnegative().optional(),
  /** Loss on --eval-data, on the steps where it was measured. */
  evalLoss: z.number().optional(),
  /** Where the run trains (from the loading phase on), and why not on the GPU when auto fell back. */
  device: z.enum(['cpu', 'cuda']).optional(),
  notice: z.string().optional(),
})
export type TrainProgress = z.infer<typeof TrainProgress>
/** Bytes a training run takes, by part, on the CPU (native/src/train/memory_plan.h) or the GPU (gpu_memory_plan.h). */
export const TrainMemoryPlan = z.object({
  weights: z.number().nonnegative(),
  adapters: z.number().nonnegative(),
  gradients: z.number().nonnegative(),
  optimizer: z.number().nonnegative(),
  activations: z.number().nonnegative(),
  workspace: z.number().nonnegative(),
  total: z.number().nonnegative(),
  /** The sequence length planned for: the longest encoded example. */
  seqLen: z.number().int().nonnegative(),
  /** The device planned for (--device, as auto resolved it). */
  device: z.enum(['cpu', 'cuda']),
})
export const TrainResult = z.object({
  outDir: z.string(),
  steps: z.number().int().nonnegative(),
  records: z.number().int().nonnegative(),
  finalLoss: z.number().nullable(),
  tokens: z.number().int().nonnegative(),
  /** options.dryRun: the memory plan, and nothing trained or written. */
  memoryPlan: TrainMemoryPlan.optional(),
})

/** Every engine method: its params, the progress it reports while running, and its result. */
export const engineMethods = {
  systemInfo: { params: z.strictObject({}), progress: z.never(), result: SystemInfo },
  cpuBenchmark: { params: CpuBenchmarkParams, progress: CpuBenchmarkProgress, result: CpuBenchmarkResult },
  generate: { params: GenerateParams, progress: GenerateProgress, result: GenerateResult },
  evaluate: { params: EvaluateParams, progress: EvaluateProgress, result: EvaluateResult },
  train: { params: TrainParams, progress: TrainProgress, result: TrainResult },
  quantize: { params: QuantizeParams, progress: QuantizeProgress, result: QuantizeResult },
} as const

export type EngineMethod = keyof typeof engineMethods
export type EngineMethods = {
  [M in EngineMethod]: {
    params: z.input<(typeof engineMethods)[M]['params']>
    parsedParams: z.output<(typeof engineMethods)[M]['params']>
    progress: z.infer<(typeof engineMethods)[M]['progress']>
    result: z.infer<(typeof engineMethods)[M]['result']>
  }
}
/** What a caller passes (defaults may be left out). */
export type ParamsOf<M extends EngineMethod> = EngineMethods[M]['params']
/** What the worker receives after validation, defaults filled in. */
export type ParsedParamsOf<M extends EngineMethod> = EngineMethods[M]['parsedParams']
export type ProgressOf<M extends EngineMethod> = EngineMethods[M]['progress']
export type ResultOf<M extends EngineMethod> = EngineMethods[M]['result']

export function isEngineMethod(method: string): method is EngineMethod {
  return Object.hasOwn(engineMethods, method)
}

/** Call ids are chosen by the host, unique per worker process. */
const CallId = z.number().int().nonnegative()

/** host → worker */
export const HostMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('call'), id: CallId, method: z.string(), params: z.unknown() }),
  z.object({ type: z.literal('cancel'), id: CallId }),
])
export type HostMessage = z.infer<typeof HostMessage>
export type CallMessage = Extract<HostMessage, { type: 'call' }>
export type CancelMessage = Extract<HostMessage, { type: 'cancel' }>

/** worker → host; `ready` comes once, when the worker listens for calls. */
export const WorkerMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  z.object({ type: z.literal('result'), id: CallId, value: z.unknown() }),
  z.object({ type: z.literal('error'), id: CallId, error: ApiErrorShape }),
  z.object({ type: z.literal('progress'), id: CallId, data: z.unknown() }),
])
export type WorkerMessage = z.infer<typeof WorkerMessage>
