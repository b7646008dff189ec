// The modules Attune adapts and the names PEFT gives their weights in adapter_model.safetensors
// (reference.md, "PEFT adapter files"): `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`
// [r, in], `….lora_B.weight` [out, r], `….lora_magnitude_vector` [out] (DoRA, no `.weight`), and
// `mlp.gate_proj` / `up_proj` / `down_proj` likewise.

/** The linear layers of a Llama-family decoder block, in PEFT's "all-linear" order. */
export const targetModules = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const
export type TargetModule = (typeof targetModules)[number]

/** The block part each module lives in. */
export const moduleParent: Readonly<Record<TargetModule, 'self_attn' | 'mlp'>> = {
  q_proj: 'self_attn',
  k_proj: 'self_attn',
  v_proj: 'self_attn',
  o_proj: 'self_attn',
  gate_proj: 'mlp',
  up_proj: 'mlp',
  down_proj: 'mlp',
}

export const adapterTensorKinds = ['lora_A', 'lora_B', 'lora_magnitude_vector'] as const
export type AdapterTensorKind = (typeof adapterTensorKinds)[number]

export function isTargetModule(value: unknown): value is TargetModule {
  return typeof value === 'string' && (targetModules as readonly string[]).includes(value)
}

/** `base_model.model.model.layers.{layer}.{self_attn|mlp}.{module}.{lora_A.weight|lora_B.weight|lora_magnitude_vector}` */
export function adapterTensorName(layer: number, module: TargetModule, kind: AdapterTensorKind): string {
  if (!Number.isSafeInteger(layer) || layer < 0) throw new RangeError(`adapterTensorName: layer ${layer} is not a layer index`)
  if (!isTargetModule(module)) throw new RangeError(`adapterTensorName: unknown module ${String(module)}`)
  const suffix = kind === 'lora_magnitude_vector' ? kind : kind === 'lora_A' || kind === 'lora_B' ? `${kind}.weight` : undefined
  if (suffix === undefined) throw new RangeError(`adapterTensorName: unknown kind ${String(kind)}`)
  return `base_model.model.model.layers.${layer}.${moduleParent[module]}.${module}.${suffix}`
}

const namePattern = /^base_model\.model\.model\.layers\.(0|[1-9]\d{0,5})\.(self_attn|mlp)\.([a-z_]+)\.(lora_A\.weight|lora_B\.weight|lora_magnitude_vector)$/

/** The reverse of adapterTensorName; null for any other name (lm_head, embeddings, biases…). */
export function parseAdapterTensorName(name: string): { layer: number; module: TargetModule; kind: AdapterTensorKind } | null {
  const match = namePattern.exec(name)
  if (!match) return null
  const module = match[3]!
  if (!isTargetModule(module) || moduleParent[module] !== match[2]) return null
  const kind = match[4] === 'lora_magnitude_vector' ? 'lora_magnitude_vector' : (match[4]!.slice(0, 6) as 'lora_A' | 'lora_B')
  return { layer: Number(match[1]), module, kind }
}

/** The sizes of a Llama-family model that fix every adapter tensor's shape. */
export interface ModelShape {
  layers: number
  hidden: number
  intermediate: number
  heads: number
  kvHeads: number
  headDim: number
}

/** A module's Linear(in, out) sizes in this model. */
export function moduleDims(model: ModelShape, module: TargetModule): { inputs: number; outputs: number } {
  switch (module) {
    case 'q_proj':
      return { inputs: model.hidden, outputs: model.heads * model.headDim }
    case 'k_proj':
    case 'v_proj':
      return { inputs: model.hidden, outputs: model.kvHeads * model.headDim }
    case 'o_proj':
      return { inputs: model.heads * model.headDim, outputs: model.hidden }
    case 'gate_proj':
    case 'up_proj':
      return { inputs: model.hidden, outputs: model.intermediate }
    case 'down_proj':
      return { inputs: model.intermediate, outputs: model.hidden }
  }
}

/** lora_A [r, in], lora_B [out, r], lora_magnitude_vector [out]. */
export function adapterTensorShape(model: ModelShape, module: TargetModule, kind: AdapterTensorKind, rank: number): number[] {
  const { inputs, outputs } = moduleDims(model, module)
  return kind === 'lora_A' ? [rank, inputs] : kind === 'lora_B' ? [outputs, rank] : [outputs]
}
