// Loads the native engine (native/addon, built by scripts/build-native.mjs) and gives it types.
// Only the engine worker loads it: a crash in native code must not take down the main process.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { ApiError } from '../contract/errors'
import type { SystemInfo } from '../contract/system'
import { projectRoot } from '../services/install-paths'
import type { CpuBenchmarkProgress, CpuBenchmarkResult } from './protocol'

/** Cancels one native operation; it stops between steps and rejects with code CANCELLED. */
export interface NativeCancelToken {
  cancel(): void
  readonly cancelled: boolean
}

/** The `code` on errors from the addon (attune::StatusCode names); callbacks' own errors pass through as thrown. */
export type NativeErrorCode = 'INVALID_ARGUMENT' | 'CANCELLED' | 'INTERNAL' | 'OUT_OF_MEMORY'

export interface NativeModelInfo {
  /** e.g. "LlamaForCausalLM" */
  architecture: string
  vocabSize: number
  hiddenSize: number
  intermediateSize: number
  layers: number
  heads: number
  kvHeads: number
  headDim: number
  contextLength: number
  tiedEmbeddings: boolean
  /** The decoder's linear weights are NF4-dequantized values (a 4-bit checkpoint, or quantizeNf4). */
  nf4Base: boolean
}

export interface NativeGenerateOptions {
  maxNewTokens: number
  temperature: number
  topP: number
  topK: number
  repetitionPenalty: number
  seed: number
  /** Generation ends after emitting one of these. */
  stopIds: Int32Array
}

export interface NativeGeneration {
  /** The new tokens, a final stop token included. */
  tokens: number[]
  finishReason: 'stop' | 'length' | 'cancelled'
  prefillMs: number
  decodeMs: number
}

export interface NativeInferenceAdapter {
  rank: number
  /** alpha / r, or alpha / √r with rsLoRA. */
  scaling: number
  dora: boolean
  /** a [r, in], b [out, r], magnitude [out] (DoRA), row-major. */
  modules: Array<{ layer: number; module: string; a: Float32Array; b: Float32Array; magnitude?: Float32Array }>
}

/** A loaded model; one operation at a time (a second concurrent call is refused). */
export interface NativeModel {
  info(): NativeModelInfo
  /** `onToken` gets every new token, in order, as soon as it is chosen. */
  generate(promptIds: Int32Array, options: NativeGenerateOptions, onToken: (token: number) => void, cancel: NativeCancelToken): Promise<NativeGeneration>
  /** Σ cross-entropy of labels[t+1] given ids[..t] over labels ≠ −100, and how many were scored. */
  sequenceLoss(ids: Int32Array, labels: Int32Array, cancel: NativeCancelToken): Promise<{ sum: number; count: number }>
  /** Applies an adapter, unmerged, to every later operation (one base serves any adapter). */
  setAdapter(adapter: NativeInferenceAdapter): void
  clearAdapter(): void
  /** Frees the model once no operation is using it. */
  close(): void
}

export interface NativeTrainerOptions {
  rank: number
  alpha: number
  rslora: boolean
  dora: boolean
  dropout: number
  /** PEFT module names: q_proj … down_proj. */
  targets: readonly string[]
  /** Seeds the adapters' initialisation and the dropout masks. */
  seed: number
  gradientCheckpointing: boolean
  threads: number
  beta1: number
  beta2: number
  eps: number
  weightDecay: number
  /** "cuda": train on the GPU (the adapters' host copies stay in sync for parameters()); default "cpu". */
  device?: 'cpu' | 'cuda'
}

export interface NativeTensor {
  /** The PEFT key, e.g. base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight */
  name: string
  shape: number[]
  data: Float32Array
}

export interface NativeOptimizerState {
  name: string
  step: number
  expAvg: Float32Array
  expAvgSq: Float32Array
}

/** Adapters being trained on a model; the model is busy while accumulate() or step() run. */
export interface NativeTrainer {
  /** Copies of the trainable tensors, in a fixed order. */
  parameters(): NativeTensor[]
  setParameter(name: string, shape: readonly number[], data: Float32Array): void
  optimizerState(): NativeOptimizerState[]
  setOptimizerState(state: readonly NativeOptimizerState[]): void
  /**
   * Forward and backward of one sequence; gradients scaled by lossScale (1 / the step's targets)
   * are added up until step(). `sample` numbers the sequence in the run (it seeds dropout).
   */
  accumulate(ids: Int32Array, labels: Int32Array, lossScale: number, sample: number): Promise<{ lossSum: number; targets: number }>
  /** Clips (maxGradNorm > 0), applies AdamW at lr, clears the gradients. */
  step(lr: number, maxGradNorm: number): Promise<{ gradNorm: number }>
  /** The bytes training sequences of seqLen tokens take, by part (native/src/train/memory_plan.h). */
  /** For training on `device` (default "cpu"); the GPU's plan is arithmetic and needs no GPU. */
  memoryPlan(seqLen: number, device?: 'cpu' | 'cuda'): NativeMemoryPlan
}

export interface NativeMemoryPlan {
  weights: number
  adapters: number
  gradients: number
  optimizer: number
  activations: number
  workspace: number
  total: number
}

/** quantizeModel's options (validated in JS first: src-main/engine/quantize-protocol.ts). */
export interface NativeQuantizeOptions {
  blocksize: number
  doubleQuant: boolean
  maxShardBytes: number
  threads: number
}

/** What quantizeModel wrote into its folder. */
export interface NativeQuantizeResult {
  /** model.safetensors, or the shards and model.safetensors.index.json (last). */
  files: string[]
  sourceTensors: number
  quantizedWeights: number
  tensorsWritten: number
  totalSize: number
  /** The quantized weights' dtype: "bfloat16", "float16" or "float32". */
  weightDtype: string
}

/** The addon's exports. Every function runs its work off the JS thread and returns a Promise. */
export interface EngineAddon {
  CancelToken: new () => NativeCancelToken
  /** Reads config.json and the safetensors weights of `dir` (memory-mapped), checking names and shapes. */
  /** quantizeNf4: compute with the NF4 double-quantized base (QLoRA/QDoRA on a full-precision model). */
  loadModel(dir: string, threads: number, options?: { quantizeNf4?: boolean }): Promise<NativeModel>
  /** Fresh adapters (PEFT's initialisation) on a loaded model. */
  createTrainer(model: NativeModel, options: NativeTrainerOptions): NativeTrainer
  systemInfo(): Promise<SystemInfo>
  /** `onProgress` is called at most ~10 times a second. */
  cpuBenchmark(
    seconds: number,
    onProgress: (progress: CpuBenchmarkProgress) => void,
    cancel: NativeCancelToken,
  ): Promise<CpuBenchmarkResult>
  /**
   * Writes the safetensors file(s) of a bitsandbytes NF4 checkpoint of the model in `srcDir` into
   * the existing folder `destDir` (native/src/quant/quantize_model.h); leaves nothing there on failure.
   */
  quantizeModel(
    srcDir: string,
    destDir: string,
    options: NativeQuantizeOptions,
    onProgress: (progress: { done: number; total: number; tensor: string }) => void,
    cancel: NativeCancelToken,
  ): Promise<NativeQuantizeResult>
}

/** Where scripts/build-native.mjs puts the addon, relative to the project root. */
export const ADDON_RELATIVE_PATH = 'native/build/Release/attune_engine.node'

/** ATTUNE_ENGINE_ADDON overrides the location (e.g. a packaged app's unpacked copy). */
export function addonPath(): string {
  return process.env.ATTUNE_ENGINE_ADDON || join(projectRoot(), ADDON_RELATIVE_PATH)
}

export function loadAddon(path: string = addonPath()): EngineAddon {
  if (!existsSync(path)) {
    throw new ApiError('ENGINE_UNAVAILABLE', `The native engine is not built (${path} is missing): run npm install`)
  }
  try {
    return createRequire(import.meta.url)(path) as EngineAddon
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    throw new ApiError('ENGINE_UNAVAILABLE', `The native engine at ${path} could not be loaded (${message}): run npm run build:native`)
  }
}
