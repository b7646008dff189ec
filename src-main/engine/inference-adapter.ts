import type { AdapterTensor } from '../domain/adapter/files'
import type { NativeInferenceAdapter } from './addon'

/** An adapter's tensors grouped per (layer, module), as the engine applies them unmerged. */
export function inferenceAdapter(tensors: readonly AdapterTensor[], settings: { rank: number; scaling: number; dora: boolean }): NativeInferenceAdapter {
  const modules = new Map<string, { layer: number; module: string; a?: Float32Array; b?: Float32Array; magnitude?: Float32Array }>()
  for (const t of tensors) {
    const key = `${t.layer}.${t.module}`
    const entry = modules.get(key) ?? { layer: t.layer, module: t.module }
    entry[t.kind === 'lora_A' ? 'a' : t.kind === 'lora_B' ? 'b' : 'magnitude'] = t.data
    modules.set(key, entry)
  }
  // readAdapter and the trainer guarantee both factors of every module.
  return { ...settings, modules: [...modules.values()].map((m) => ({ ...m, a: m.a!, b: m.b! })) }
}
