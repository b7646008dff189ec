// PEFT adapter folders (reference.md, "PEFT adapter files"): adapter_config.json and
// adapter_model.safetensors (float32 tensors, metadata {"format":"pt"}), as
// `PeftModel.from_pretrained` loads them.
//
// readAdapter checks, for a given model, that the adapter is complete and made for it: every
// target module of every layer has lora_A [r, in] and lora_B [out, r] (and, for DoRA, a
// lora_magnitude_vector [out]), nothing else is in the file, values are finite. A size that does
// not match the model is explained as an adapter trained for another base model.

import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic, writeFilesAtomic } from '../../services/atomic-file'
import { tensorToFloat32 } from '../safetensors/convert'
import { SafetensorsError } from '../safetensors/errors'
import { readSafetensorsFile, type SafetensorsTensor } from '../safetensors/read'
import { serializeSafetensors, type TensorToWrite } from '../safetensors/write'
import { AdapterConfig, adapterConfigJson, parseAdapterConfig, sortTargets } from './config'
import { AdapterError } from './errors'
import { adapterTensorName, moduleDims, parseAdapterTensorName, type AdapterTensorKind, type ModelShape, type TargetModule } from './names'

export const adapterConfigFile = 'adapter_config.json'
export const adapterWeightsFile = 'adapter_model.safetensors'

export interface AdapterTensor {
  layer: number
  module: TargetModule
  kind: AdapterTensorKind
  shape: number[]
  /** Row-major float32 values. */
  data: Float32Array
}

export interface AdapterContent {
  config: AdapterConfig
  /** Every lora_A / lora_B (/ lora_magnitude_vector) of every layer and target module, any order. */
  tensors: AdapterTensor[]
}

export interface LoadedAdapter extends AdapterContent {
  dir: string
  /** By tensor name (adapterTensorName). */
  byName: Map<string, AdapterTensor>
  /** adapter_config.json keys unknown to Attune and peft 0.21, ignored. */
  unknownKeys: string[]
  /** One tensor; always present for a target module of a layer of the model (readAdapter checked). */
  get(layer: number, module: TargetModule, kind: AdapterTensorKind): AdapterTensor
}

/** The two files of an adapter folder, as bytes. Throws AdapterError BAD_INPUT when inconsistent. */
export function encodeAdapter(adapter: AdapterContent, model?: ModelShape, where = 'adapter'): Record<string, Uint8Array | string> {
  const parsed = AdapterConfig.safeParse(adapter.config)
  if (!parsed.success) {
    throw new AdapterError('BAD_INPUT', where, `${where}: invalid adapter config: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
  }
  const config = parsed.data
  const byName = new Map<string, AdapterTensor>()
  for (const tensor of adapter.tensors) {
    const name = adapterTensorName(tensor.layer, tensor.module, tensor.kind)
    if (byName.has(name)) throw new AdapterError('BAD_INPUT', where, `${where}: ${name} is given twice`)
    if (!(tensor.data instanceof Float32Array)) throw new AdapterError('BAD_INPUT', where, `${where}: ${name} must be a Float32Array`)
    const elements = tensor.shape.reduce((n, size) => n * size, 1)
    if (tensor.data.length !== elements) {
      throw new AdapterError('BAD_INPUT', where, `${where}: ${name} has ${tensor.data.length} values for shape [${tensor.shape.join(', ')}]`)
    }
    byName.set(name, tensor)
  }
  const layers = Math.max(0, ...adapter.tensors.map((t) => t.layer + 1))
  const problem = checkTensors(byName, config, layers, model)
  if (problem) throw new AdapterError('BAD_INPUT', where, `${where}: ${problem.message}`)

  const tensors = new Map<string, TensorToWrite>()
  for (const [name, tensor] of byName) tensors.set(name, { dtype: 'F32', shape: tensor.shape, data: tensor.data })
  return {
    [adapterConfigFile]: adapterConfigJson(config),
    [adapterWeightsFile]: serializeSafetensors(tensors, { format: 'pt' }, join(where, adapterWeightsFile)),
  }
}

/**
 * Writes an adapter folder atomically: afterwards `dir` holds exactly the two adapter files, and a
 * crash or a full disk leaves the previous folder complete (services/atomic-file.ts). For an
 * adapter library entry or a checkpoint's adapter.
 */
export async function writeAdapter(dir: string, adapter: AdapterContent, model?: ModelShape): Promise<void> {
  await writeFilesAtomic(dir, encodeAdapter(adapter, model, dir))
}

/**
 * Writes the two adapter files into a folder that holds other files too (a training run's
 * `--out`, beside metrics.jsonl and checkpoints/), leaving those alone. Each file is written
 * atomically, the weights first and adapter_config.json last: a new folder counts as an adapter
 * only once both are complete. (Over an older adapter, a crash between the two can pair the new
 * weights with the old config; readAdapter refuses such a pair when their sizes disagree.)
 */
export async function writeAdapterFiles(dir: string, adapter: AdapterContent, model?: ModelShape): Promise<void> {
  const files = encodeAdapter(adapter, model, dir)
  await writeFileAtomic(join(dir, adapterWeightsFile), files[adapterWeightsFile]!)
  await writeFileAtomic(join(dir, adapterConfigFile), files[adapterConfigFile]!)
}

/**
 * Reads an adapter folder and checks it against `model`: complete, nothing extra, sizes of this
 * model, finite values. Tensors come back as float32 (F16, BF16 and F64 files are converted).
 */
export async function readAdapter(dir: string, model: ModelShape): Promise<LoadedAdapter> {
  const configPath = join(dir, adapterConfigFile)
  const weightsPath = join(dir, adapterWeightsFile)
  let configText: string
  try {
    configText = await readFile(configPath, 'utf8')
  } catch (error) {
    throw notAnAdapter(dir, configPath, error)
  }
  let raw: unknown
  try {
    raw = JSON.parse(configText.replace(/^\ufeff/, ''))
  } catch (error) {
    throw new AdapterError('INVALID_CONFIG', configPath, `${configPath}: is not valid JSON (${(error as Error).message})`)
  }
  const { config, targetLayers, unknownKeys } = parseAdapterConfig(raw, configPath)

  let file
  try {
    file = await readSafetensorsFile(weightsPath)
  } catch (error) {
    if (error instanceof SafetensorsError && error.code === 'READ_FAILED') {
      const bin = await readFile(join(dir, 'adapter_model.bin')).then(
        () => true,
        () => false,
      )
      if (bin) {
        throw new AdapterError(
          'NOT_AN_ADAPTER',
          weightsPath,
          `${dir}: has adapter_model.bin (a pickle) but no adapter_model.safetensors; Attune reads only safetensors — save the adapter again with peft's save_pretrained (safe_serialization=True)`,
          { cause: error },
        )
      }
      throw notAnAdapter(dir, weightsPath, error)
    }
    throw new AdapterError('INVALID_WEIGHTS', weightsPath, (error as Error).message, { cause: error })
  }

  const byName = new Map<string, AdapterTensor>()
  const raws = new Map<string, SafetensorsTensor>()
  for (const [name, tensor] of file.tensors) {
    const parsed = parseAdapterTensorName(name)
    if (!parsed) {
      throw new AdapterError(
        'INVALID_WEIGHTS',
        weightsPath,
        `${weightsPath}: tensor ${JSON.stringify(name)} is not a LoRA weight of ${sortTargets(config.target_modules).join(', ')} (modules_to_save, embeddings or lm_head?); Attune cannot use this adapter`,
      )
    }
    if (!['F32', 'F16', 'BF16', 'F64'].includes(tensor.dtype)) {
      throw new AdapterError('INVALID_WEIGHTS', weightsPath, `${weightsPath}: tensor ${JSON.stringify(name)} is ${tensor.dtype}; adapter weights must be floating point`)
    }
    raws.set(name, tensor)
    byName.set(name, { ...parsed, shape: tensor.shape, data: new Float32Array(0) })
  }
  // target_modules naming single layers (as peft saves "all-linear") must name all of them.
  const adapterLayers = Math.max(0, ...[...byName.values()].map((t) => t.layer + 1))
  for (const module of sortTargets(Object.keys(targetLayers) as TargetModule[])) {
    const layers = targetLayers[module]!
    const missing = range(adapterLayers).filter((layer) => !layers.includes(layer))
    if (missing.length > 0) {
      throw new AdapterError(
        'UNSUPPORTED',
        configPath,
        `${configPath}: Attune cannot use this adapter: target_modules adapts ${module} in some layers only (not in ${listLayers(missing)}); Attune adapts every layer`,
      )
    }
  }
  const problem = checkTensors(byName, config, model.layers, model)
  if (problem) throw new AdapterError(problem.wrongModel ? 'WRONG_MODEL' : 'INVALID_WEIGHTS', weightsPath, `adapter ${dir}: ${problem.message}`)

  for (const [name, tensor] of byName) {
    tensor.data = tensorToFloat32(raws.get(name)!, weightsPath)
    const bad = tensor.data.findIndex((value) => !Number.isFinite(value))
    if (bad >= 0) {
      throw new AdapterError('INVALID_WEIGHTS', weightsPath, `adapter ${dir}: ${name} holds ${tensor.data[bad]} at index ${bad}; the adapter is broken (training diverged?)`)
    }
  }
  const tensors = [...byName.values()]
  return {
    dir,
    config,
    tensors,
    byName,
    unknownKeys,
    get(layer, module, kind) {
      const tensor = byName.get(adapterTensorName(layer, module, kind))
      if (!tensor) throw new RangeError(`adapter ${dir} has no ${adapterTensorName(layer, module, kind)}`)
      return tensor
    },
  }
}

// ---------------------------------------------------------------------------------------------

function notAnAdapter(dir: string, path: string, error: unknown): AdapterError {
  const cause = error instanceof SafetensorsError ? error.cause : error
  const missing = (cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT'
  const name = path.slice(dir.length).replace(/^[\\/]/, '')
  return new AdapterError(
    'NOT_AN_ADAPTER',
    path,
    missing ? `${dir}: is not a PEFT adapter folder: it has no ${name}` : `${path}: cannot be read: ${(error as Error)?.message ?? String(error)}`,
    { cause: error },
  )
}

/**
 * The first problem with a set of adapter tensors for `layers` layers: missing or unexpected
 * tensors, another rank, sizes that do not agree with each other or (given `model`) with the
 * model's. `wrongModel` marks the problems that mean another base model.
 */
function checkTensors(
  byName: ReadonlyMap<string, Pick<AdapterTensor, 'layer' | 'module' | 'kind' | 'shape'>>,
  config: AdapterConfig,
  layers: number,
  model: ModelShape | undefined,
): { message: string; wrongModel?: boolean } | null {
  const targets = sortTargets(config.target_modules)
  const kinds: AdapterTensorKind[] = config.use_dora ? ['lora_A', 'lora_B', 'lora_magnitude_vector'] : ['lora_A', 'lora_B']
  const r = config.r
  const adapterLayers = Math.max(0, ...[...byName.values()].map((t) => t.layer + 1))

  for (const [name, tensor] of byName) {
    if (!targets.includes(tensor.module)) {
      return { message: `has ${name}, but ${tensor.module} is not in target_modules (${targets.join(', ')})` }
    }
    if (tensor.kind === 'lora_magnitude_vector' && !config.use_dora) {
      return { message: `has DoRA magnitudes (${name}) but use_dora is false in adapter_config.json` }
    }
  }
  if (model && adapterLayers > model.layers) {
    return { message: `has weights for ${adapterLayers} layers but this model has ${model.layers} — it was trained for a different base model`, wrongModel: true }
  }
  // Sizes each module must have: the model's, or else those of its first layer.
  const expectedDims = new Map<TargetModule, { inputs: number; outputs: number; from: string }>()
  for (const module of targets) {
    if (model) {
      expectedDims.set(module, { ...moduleDims(model, module), from: "this model's" })
      continue
    }
    const a = byName.get(adapterTensorName(0, module, 'lora_A'))
    const b = byName.get(adapterTensorName(0, module, 'lora_B'))
    if (a?.shape.length === 2 && b?.shape.length === 2) expectedDims.set(module, { inputs: a.shape[1]!, outputs: b.shape[0]!, from: "layer 0's" })
  }
  const perLayer = targets.length * kinds.length
  if (model && adapterLayers > 0 && adapterLayers < model.layers && byName.size === adapterLayers * perLayer) {
    return { message: `has weights for ${adapterLayers} layers but this model has ${model.layers} — it was trained for a different base model`, wrongModel: true }
  }
  for (let layer = 0; layer < layers; layer++) {
    for (const module of targets) {
      for (const kind of kinds) {
        const name = adapterTensorName(layer, module, kind)
        const tensor = byName.get(name)
        if (!tensor) {
          // Every tensor present is one of the expected ones (checked above), so the rest is missing.
          const more = layers * perLayer - byName.size - 1
          return { message: `lacks ${name}${more > 0 ? ` and ${more} more` : ''} (every layer of every target module needs ${kinds.join(', ')})` }
        }
        const where = `layer ${layer} ${module}.${kind}`
        const dims = expectedDims.get(module)
        const shape = tensor.shape
        if (kind === 'lora_A') {
          if (shape.length !== 2) return { message: `${where} has shape [${shape.join(', ')}], not [r, inputs]` }
          if (shape[0] !== r) return { message: `${where} has rank ${shape[0]} but adapter_config.json says r = ${r}` }
          if (dims && shape[1] !== dims.inputs) return mismatch(`${module}.lora_A has ${shape[1]} inputs but ${dims.from} ${module} has ${dims.inputs}`, model)
        } else if (kind === 'lora_B') {
          if (shape.length !== 2) return { message: `${where} has shape [${shape.join(', ')}], not [outputs, r]` }
          if (shape[1] !== r) return { message: `${where} has rank ${shape[1]} but adapter_config.json says r = ${r}` }
          if (dims && shape[0] !== dims.outputs) return mismatch(`${module}.lora_B has ${shape[0]} outputs but ${dims.from} ${module} has ${dims.outputs}`, model)
        } else {
          if (shape.length !== 1) return { message: `${where} has shape [${shape.join(', ')}], not [outputs]` }
          if (dims && shape[0] !== dims.outputs) return mismatch(`${module}.lora_magnitude_vector has ${shape[0]} outputs but ${dims.from} ${module} has ${dims.outputs}`, model)
        }
      }
    }
  }
  return null
}

function mismatch(what: string, model: ModelShape | undefined): { message: string; wrongModel?: boolean } {
  return model ? { message: `${what} — it was trained for a different base model`, wrongModel: true } : { message: `${what}: the layers disagree` }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i)
}

function listLayers(layers: number[]): string {
  return layers.length > 6 ? `layers ${layers.slice(0, 6).join(', ')}…` : `layer${layers.length > 1 ? 's' : ''} ${layers.join(', ')}`
}
