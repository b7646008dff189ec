// adapter_config.json of a PEFT LoRA/DoRA adapter (reference.md, "PEFT adapter files").
//
// Attune writes exactly the keys of reference.md. peft 0.21 writes many more (lora_bias,
// exclude_modules, megatron_config, target_parameters…): reading keeps the known keys, accepts
// the others where they leave a saved adapter's meaning unchanged, and refuses — with one
// sentence per setting — whatever Attune cannot honour: per-module ranks or alphas
// (rank_pattern, alpha_pattern), some layers only (layers_to_transform, layer-specific
// target_modules that leave layers out, exclude_modules), fully trained extra modules
// (modules_to_save, trainable_token_indices), biases (bias ≠ "none", lora_bias),
// fan_in_fan_out, another peft_type or task_type, an initialisation that changed the base
// weights (PiSSA, OLoRA, LoftQ, EVA, CorDA…), PEFT variants with other forward passes (aLoRA,
// QA-LoRA, Arrow, KaSA, VeLoRA, MonteCLoRA, BD-LoRA, Megatron), and target modules other than
// q,k,v,o,gate,up,down_proj. Keys peft does not write today are ignored and listed in
// `unknownKeys`, so the app can mention them.

import { z } from 'zod'
import { AdapterError } from './errors'
import { isTargetModule, moduleParent, targetModules, type TargetModule } from './names'

const emptyMap = z.strictObject({})

/** The keys Attune writes, with the values it can honour (reference.md's list, exactly). */
export const AdapterConfig = z.strictObject({
  peft_type: z.literal('LORA'),
  task_type: z.literal('CAUSAL_LM'),
  base_model_name_or_path: z.string().nullable(),
  r: z.number().int().positive(),
  lora_alpha: z.number().positive().finite(),
  lora_dropout: z.number().min(0).lt(1),
  /** Module names (suffixes), in Attune's order: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj. */
  target_modules: z.array(z.enum(targetModules)).min(1),
  bias: z.literal('none'),
  fan_in_fan_out: z.literal(false),
  use_dora: z.boolean(),
  use_rslora: z.boolean(),
  modules_to_save: z.null(),
  /** How A and B were initialised; only these leave the base model's weights unchanged. */
  init_lora_weights: z.union([z.boolean(), z.literal('gaussian'), z.literal('orthogonal')]),
  inference_mode: z.boolean(),
  rank_pattern: emptyMap,
  alpha_pattern: emptyMap,
  layers_to_transform: z.null(),
  layers_pattern: z.union([z.string(), z.array(z.string())]).nullable(),
  revision: z.string().nullable(),
})
export type AdapterConfig = z.infer<typeof AdapterConfig>

const knownKeys = Object.keys(AdapterConfig.shape) as (keyof AdapterConfig)[]

/** An adapter config for Attune's own settings; the rest as PEFT saves a trained adapter. */
export function makeAdapterConfig(settings: {
  rank: number
  alpha: number
  dropout: number
  targets: readonly TargetModule[]
  useDora: boolean
  useRslora: boolean
  baseModel: string | null
  revision?: string | null
}): AdapterConfig {
  return AdapterConfig.parse({
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: settings.baseModel,
    r: settings.rank,
    lora_alpha: settings.alpha,
    lora_dropout: settings.dropout,
    target_modules: sortTargets(settings.targets),
    bias: 'none',
    fan_in_fan_out: false,
    use_dora: settings.useDora,
    use_rslora: settings.useRslora,
    modules_to_save: null,
    init_lora_weights: true,
    inference_mode: true,
    rank_pattern: {},
    alpha_pattern: {},
    layers_to_transform: null,
    layers_pattern: null,
    revision: settings.revision ?? null,
  })
}

/** adapter_config.json's text: the known keys only, sorted, indented by 2 as peft writes it. */
export function adapterConfigJson(config: AdapterConfig): string {
  const checked = AdapterConfig.parse({ ...config, target_modules: sortTargets(config.target_modules) })
  const sorted = Object.fromEntries(Object.entries(checked).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  return JSON.stringify(sorted, null, 2) + '\n'
}

/** LoRA's scaling: alpha / r, or alpha / √r with rsLoRA. */
export function adapterScaling(config: Pick<AdapterConfig, 'r' | 'lora_alpha' | 'use_rslora'>): number {
  return config.use_rslora ? config.lora_alpha / Math.sqrt(config.r) : config.lora_alpha / config.r
}

export interface ParsedAdapterConfig {
  config: AdapterConfig
  /**
   * Where target_modules names modules of single layers (peft writes "all-linear" that way:
   * `model.layers.3.self_attn.q_proj`…): for each such module, the layers named. readAdapter
   * checks they are all of the model's layers. Modules named without a layer are not listed.
   */
  targetLayers: Partial<Record<TargetModule, number[]>>
  /** Keys neither Attune nor peft 0.21 knows; ignored. */
  unknownKeys: string[]
}

/** What a saved adapter may carry and still mean the same thing: peft's keys without effect on it. */
const harmlessKeys = new Set([
  'auto_mapping',
  'peft_version',
  'megatron_core',
  'qalora_group_size',
  'loftq_config',
  'eva_config',
  'corda_config',
  'lora_ga_config',
  'ensure_weight_tying',
  'runtime_config',
])

const isNullish = (value: unknown) => value === null || value === undefined
const isEmpty = (value: unknown) =>
  isNullish(value) || value === false || value === '' || (Array.isArray(value) && value.length === 0) || (isObject(value) && Object.keys(value).length === 0)

/** peft keys Attune refuses unless they have their no-op value, and why. */
const refusedUnlessEmpty: Record<string, string> = {
  rank_pattern: 'gives some modules another rank than r; Attune trains and loads one rank for every module',
  alpha_pattern: 'gives some modules another lora_alpha; Attune uses one alpha for every module',
  layers_to_transform: 'adapts only some layers; Attune adapts every layer',
  modules_to_save: 'saves fully trained copies of other modules, which Attune cannot load or train',
  exclude_modules: 'leaves some modules out of the targets; Attune adapts every layer of each target module',
  trainable_token_indices: 'trains rows of the token embeddings, which Attune cannot load or train',
  lora_bias: 'adds a trained bias to lora_B, which Attune does not support',
  target_parameters: 'adapts parameters directly (target_parameters), which Attune does not support',
  use_qalora: 'is a QA-LoRA adapter, whose forward pass differs from LoRA',
  alora_invocation_tokens: 'is an activated LoRA (aLoRA), applied only after its invocation tokens',
  arrow_config: 'is an Arrow routing adapter, which Attune does not support',
  kasa_config: 'is a KaSA adapter, which Attune does not support',
  velora_config: 'is a VeLoRA adapter, which Attune does not support',
  monteclora_config: 'is a MonteCLoRA adapter, which Attune does not support',
  use_bdlora: 'is a block-diagonal (BD-LoRA) adapter, which Attune does not support',
  layer_replication: 'replicates layers of the base model, which Attune does not support',
  megatron_config: 'was made for Megatron parallel layers, which Attune does not support',
}

/** Parses adapter_config.json's content. `file` names it in errors. */
export function parseAdapterConfig(raw: unknown, file: string): ParsedAdapterConfig {
  if (!isObject(raw)) throw new AdapterError('INVALID_CONFIG', file, `${file}: is not a JSON object of PEFT settings`)
  const refusals: string[] = []
  const refuse = (key: string, value: unknown, why: string) => refusals.push(`${key} ${show(value)} ${why}`)

  if (raw.peft_type !== 'LORA') {
    refuse('peft_type', raw.peft_type, 'is not a LoRA adapter; Attune loads LoRA and DoRA adapters (peft_type "LORA")')
  }
  if (!isNullish(raw.task_type) && raw.task_type !== 'CAUSAL_LM') {
    refuse('task_type', raw.task_type, 'is not a causal language model adapter (task_type "CAUSAL_LM")')
  }
  if (!isNullish(raw.bias) && raw.bias !== 'none') refuse('bias', raw.bias, 'trains biases; Attune supports bias "none" only')
  if (raw.fan_in_fan_out === true) refuse('fan_in_fan_out', raw.fan_in_fan_out, 'stores weights transposed (GPT-2 Conv1D layers), which Llama-family models do not have')
  for (const [key, why] of Object.entries(refusedUnlessEmpty)) {
    if (!isEmpty(raw[key])) refuse(key, raw[key], why)
  }
  const init = raw.init_lora_weights
  if (!isNullish(init) && typeof init !== 'boolean' && init !== 'gaussian' && init !== 'orthogonal') {
    refuse(
      'init_lora_weights',
      init,
      'changes the base model’s weights when the adapter is created; Attune needs an adapter over the unchanged base model (peft can convert one with path_initial_model_for_weight_conversion)',
    )
  }

  const targets = parseTargetModules(raw.target_modules)
  for (const entry of targets.unknown) {
    refuse('target_modules', entry, `is not a module Attune adapts (it adapts ${targetModules.join(', ')})`)
  }
  if (targets.regex !== undefined) {
    refuse('target_modules', targets.regex, 'is a regular expression; Attune needs a list of module names (or "all-linear")')
  }
  if (refusals.length > 0) {
    throw new AdapterError('UNSUPPORTED', file, `${file}: Attune cannot use this adapter: ${refusals.join('; ')}.`)
  }

  // The known keys, with peft's defaults for the ones older versions did not write.
  const candidate: Record<string, unknown> = {
    peft_type: raw.peft_type,
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: raw.base_model_name_or_path ?? null,
    r: raw.r ?? 8,
    lora_alpha: raw.lora_alpha ?? 8,
    lora_dropout: raw.lora_dropout ?? 0,
    target_modules: targets.modules,
    bias: 'none',
    fan_in_fan_out: false,
    use_dora: raw.use_dora ?? false,
    use_rslora: raw.use_rslora ?? false,
    modules_to_save: null,
    init_lora_weights: raw.init_lora_weights ?? true,
    inference_mode: raw.inference_mode ?? true,
    rank_pattern: {},
    alpha_pattern: {},
    layers_to_transform: null,
    layers_pattern: raw.layers_pattern ?? null,
    revision: raw.revision ?? null,
  }
  const result = AdapterConfig.safeParse(candidate)
  if (!result.success) {
    const issues = result.error.issues.map((issue) => `${issue.path.join('.') || 'the object'} ${show(issue.path.length ? pathValue(candidate, issue.path) : candidate)}: ${issue.message}`)
    throw new AdapterError('INVALID_CONFIG', file, `${file}: invalid setting ${issues.join('; ')}`)
  }
  const unknownKeys = Object.keys(raw)
    .filter((key) => !(knownKeys as string[]).includes(key) && !harmlessKeys.has(key) && !(key in refusedUnlessEmpty))
    .sort()
  return { config: result.data, targetLayers: targets.layers, unknownKeys }
}

function pathValue(value: unknown, path: PropertyKey[]): unknown {
  let current = value
  for (const key of path) current = isObject(current) || Array.isArray(current) ? (current as Record<PropertyKey, unknown>)[key] : undefined
  return current
}

/** Attune's order (q, k, v, o, gate, up, down) without repeats. */
export function sortTargets(targets: readonly TargetModule[]): TargetModule[] {
  return targetModules.filter((module) => targets.includes(module))
}

const targetPattern = /^(?:(?:.*\.)?layers\.(0|[1-9]\d{0,5})\.)?(?:(self_attn|mlp)\.)?([a-z_]+)$/

/**
 * target_modules as peft saves it: a list of suffixes ("q_proj", "self_attn.q_proj"), full module
 * paths of single layers ("model.layers.0.self_attn.q_proj", as "all-linear" is saved), the
 * string "all-linear", or null (peft's default for Llama-family models: q_proj and v_proj). Any
 * other string is a regular expression.
 */
function parseTargetModules(value: unknown): { modules: TargetModule[] | unknown; layers: Partial<Record<TargetModule, number[]>>; unknown: string[]; regex?: string } {
  const layers: Partial<Record<TargetModule, number[]>> = {}
  if (isNullish(value)) return { modules: ['q_proj', 'v_proj'], layers, unknown: [] }
  if (value === 'all-linear') return { modules: [...targetModules], layers, unknown: [] }
  if (typeof value === 'string') return { modules: [], layers, unknown: [], regex: value }
  if (!Array.isArray(value)) return { modules: value, layers, unknown: [] } // the schema explains
  const everyLayer = new Set<TargetModule>()
  const unknown: string[] = []
  for (const entry of value) {
    if (typeof entry !== 'string') return { modules: value, layers, unknown: [] }
    const match = targetPattern.exec(entry.trim())
    const module = match?.[3]
    if (!match || !isTargetModule(module) || (match[2] !== undefined && moduleParent[module] !== match[2])) {
      unknown.push(entry)
      continue
    }
    if (match[1] === undefined) everyLayer.add(module)
    else (layers[module] ??= []).push(Number(match[1]))
  }
  for (const module of everyLayer) delete layers[module]
  for (const list of Object.values(layers)) list.sort((a, b) => a - b)
  const modules = sortTargets([...everyLayer, ...(Object.keys(layers) as TargetModule[])])
  return { modules, layers, unknown }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function show(value: unknown): string {
  const text = value === undefined ? 'missing' : (JSON.stringify(value) ?? String(value))
  return text.length > 80 ? `${text.slice(0, 77)}…` : text
}
