// adapter_config.json (reference.md, "PEFT adapter files"): peft 0.21's real files are read
// (their many extra keys accepted), settings Attune cannot honour are refused with one reason
// each, and what Attune writes is exactly the known keys.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AdapterConfig, adapterConfigJson, adapterScaling, makeAdapterConfig, parseAdapterConfig } from '../../src-main/domain/adapter/config'
import { AdapterError } from '../../src-main/domain/adapter/errors'
import { targetModules } from '../../src-main/domain/adapter/names'

const fixtures = join(process.cwd(), 'test', 'fixtures', 'peft')
const peftConfig = (name: string) => JSON.parse(readFileSync(join(fixtures, name, 'adapter_config.json'), 'utf8')) as Record<string, unknown>

function refusal(raw: unknown): AdapterError {
  try {
    parseAdapterConfig(raw, 'adapter_config.json')
  } catch (error) {
    expect(error).toBeInstanceOf(AdapterError)
    return error as AdapterError
  }
  throw new Error('expected a refusal')
}

describe('peft-written configs', () => {
  it('reads peft 0.21 LoRA q,v: every extra key accepted, the known ones kept', () => {
    const raw = peftConfig('llama-lora-qv')
    expect(Object.keys(raw).length).toBeGreaterThan(30) // peft writes many keys Attune does not
    const { config, targetLayers, unknownKeys } = parseAdapterConfig(raw, 'adapter_config.json')
    expect(config).toEqual({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: 'test/golden/fixtures/llama',
      r: 4,
      lora_alpha: 8,
      lora_dropout: 0.05,
      target_modules: ['q_proj', 'v_proj'],
      bias: 'none',
      fan_in_fan_out: false,
      use_dora: false,
      use_rslora: false,
      modules_to_save: null,
      init_lora_weights: true,
      inference_mode: true,
      rank_pattern: {},
      alpha_pattern: {},
      layers_to_transform: null,
      layers_pattern: null,
      revision: null,
    })
    expect(targetLayers).toEqual({})
    expect(unknownKeys).toEqual([])
  })

  it('reads peft 0.21 DoRA all-linear, saved as the modules of each layer', () => {
    const raw = peftConfig('llama-dora-all')
    expect((raw.target_modules as string[])[0]).toMatch(/^model\.layers\.\d\.(self_attn|mlp)\.\w+_proj$/)
    const { config, targetLayers } = parseAdapterConfig(raw, 'adapter_config.json')
    expect(config).toMatchObject({ use_dora: true, use_rslora: true, r: 4, lora_alpha: 16, target_modules: [...targetModules] })
    for (const module of targetModules) expect(targetLayers[module]).toEqual([0, 1])
  })

  it('fills in peft defaults for keys older versions did not write', () => {
    const { config } = parseAdapterConfig({ peft_type: 'LORA', r: 16, lora_alpha: 32, target_modules: ['q_proj', 'k_proj'] }, 'old.json')
    expect(config).toMatchObject({ task_type: 'CAUSAL_LM', lora_dropout: 0, use_dora: false, use_rslora: false, init_lora_weights: true, revision: null, base_model_name_or_path: null })
    // No target_modules: peft's default for Llama-family models.
    expect(parseAdapterConfig({ peft_type: 'LORA', r: 8, lora_alpha: 8, target_modules: null }, 'x').config.target_modules).toEqual(['q_proj', 'v_proj'])
    expect(parseAdapterConfig({ peft_type: 'LORA', r: 8, lora_alpha: 8, target_modules: 'all-linear' }, 'x').config.target_modules).toEqual([...targetModules])
    // Suffixes with their block part, in any order, repeated.
    expect(parseAdapterConfig({ peft_type: 'LORA', r: 8, lora_alpha: 8, target_modules: ['mlp.down_proj', 'self_attn.q_proj', 'q_proj'] }, 'x').config.target_modules).toEqual(['q_proj', 'down_proj'])
  })

  it('lists keys it does not know, and ignores them', () => {
    const raw = { ...peftConfig('llama-lora-qv'), some_future_setting: 3, another: null }
    expect(parseAdapterConfig(raw, 'x').unknownKeys).toEqual(['another', 'some_future_setting'])
  })
})

describe('settings Attune cannot honour', () => {
  const base = peftConfig('llama-lora-qv')
  it.each<[string, Record<string, unknown>, RegExp]>([
    ['rank_pattern', { rank_pattern: { q_proj: 8 } }, /rank_pattern \{"q_proj":8\} gives some modules another rank than r; Attune trains and loads one rank for every module/],
    ['alpha_pattern', { alpha_pattern: { 'model.layers.0.self_attn.q_proj': 4 } }, /alpha_pattern .* gives some modules another lora_alpha/],
    ['layers_to_transform', { layers_to_transform: [0] }, /layers_to_transform \[0\] adapts only some layers; Attune adapts every layer/],
    ['modules_to_save', { modules_to_save: ['lm_head'] }, /modules_to_save \["lm_head"\] saves fully trained copies of other modules/],
    ['bias', { bias: 'lora_only' }, /bias "lora_only" trains biases; Attune supports bias "none" only/],
    ['fan_in_fan_out', { fan_in_fan_out: true }, /fan_in_fan_out true stores weights transposed/],
    ['peft_type', { peft_type: 'IA3' }, /peft_type "IA3" is not a LoRA adapter/],
    ['a missing peft_type', { peft_type: undefined }, /peft_type missing is not a LoRA adapter/],
    ['task_type', { task_type: 'SEQ_CLS' }, /task_type "SEQ_CLS" is not a causal language model adapter/],
    ['lora_bias', { lora_bias: true }, /lora_bias true adds a trained bias to lora_B/],
    ['exclude_modules', { exclude_modules: ['model.layers.0.self_attn.q_proj'] }, /exclude_modules .* leaves some modules out of the targets/],
    ['trainable_token_indices', { trainable_token_indices: [1, 2] }, /trains rows of the token embeddings/],
    ['use_qalora', { use_qalora: true }, /QA-LoRA/],
    ['aLoRA', { alora_invocation_tokens: [5, 6] }, /activated LoRA/],
    ['target_parameters', { target_parameters: ['mlp.experts.down_proj'] }, /adapts parameters directly/],
    ['megatron_config', { megatron_config: { tp: 2 } }, /Megatron/],
    ['layer_replication', { layer_replication: [[0, 2]] }, /replicates layers/],
    ['PiSSA', { init_lora_weights: 'pissa' }, /init_lora_weights "pissa" changes the base model’s weights when the adapter is created/],
    ['LoftQ', { init_lora_weights: 'loftq' }, /init_lora_weights "loftq" changes the base model’s weights/],
    ['lm_head as a target', { target_modules: ['q_proj', 'lm_head'] }, /target_modules "lm_head" is not a module Attune adapts \(it adapts q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj\)/],
    ['a mismatched block part', { target_modules: ['mlp.q_proj'] }, /target_modules "mlp\.q_proj" is not a module Attune adapts/],
    ['a regular expression', { target_modules: '.*\\.(q|v)_proj' }, /target_modules ".*\\\\.\(q\|v\)_proj" is a regular expression; Attune needs a list of module names/],
  ])('%s', (_label, change, message) => {
    const error = refusal({ ...base, ...change })
    expect(error.code).toBe('UNSUPPORTED')
    expect(error.file).toBe('adapter_config.json')
    expect(error.message).toMatch(/^adapter_config\.json: Attune cannot use this adapter: /)
    expect(error.message).toMatch(message)
  })

  it('names every refused setting at once', () => {
    const error = refusal({ ...base, bias: 'all', rank_pattern: { q_proj: 2 }, modules_to_save: ['embed_tokens'] })
    expect(error.message).toMatch(/bias "all".*; rank_pattern.*; modules_to_save/)
  })

  it('accepts the no-op values of those settings and the initialisations that leave the base alone', () => {
    for (const change of [
      { exclude_modules: [] },
      { modules_to_save: [] },
      { lora_bias: false },
      { use_bdlora: false },
      { init_lora_weights: false },
      { init_lora_weights: 'gaussian' },
      { init_lora_weights: 'orthogonal' },
      { task_type: null },
      { layers_pattern: 'layers', layers_to_transform: null },
    ]) {
      expect(() => parseAdapterConfig({ ...base, ...change }, 'x'), JSON.stringify(change)).not.toThrow()
    }
  })

  it('explains a wrong type or value, naming the setting', () => {
    const error = refusal({ ...base, r: '8' })
    expect(error.code).toBe('INVALID_CONFIG')
    expect(error.message).toMatch(/^adapter_config\.json: invalid setting r "8": /)
    expect(refusal({ ...base, lora_dropout: 1.5 }).message).toMatch(/invalid setting lora_dropout 1\.5/)
    expect(refusal({ ...base, r: 0 }).message).toMatch(/invalid setting r 0/)
    expect(refusal({ ...base, use_dora: 'yes' }).message).toMatch(/invalid setting use_dora "yes"/)
    expect(refusal({ ...base, target_modules: [] }).message).toMatch(/invalid setting target_modules \[\]/)
    expect(refusal([1, 2]).code).toBe('INVALID_CONFIG')
    expect(refusal(null).message).toBe('adapter_config.json: is not a JSON object of PEFT settings')
  })
})

describe('the config Attune writes', () => {
  const config = makeAdapterConfig({ rank: 16, alpha: 32, dropout: 0.05, targets: ['down_proj', 'q_proj', 'v_proj', 'q_proj'], useDora: false, useRslora: true, baseModel: 'HuggingFaceTB/SmolLM2-135M' })

  it('is exactly the known keys, sorted and indented as peft writes them', () => {
    expect(adapterConfigJson(config)).toBe(`{
  "alpha_pattern": {},
  "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M",
  "bias": "none",
  "fan_in_fan_out": false,
  "inference_mode": true,
  "init_lora_weights": true,
  "layers_pattern": null,
  "layers_to_transform": null,
  "lora_alpha": 32,
  "lora_dropout": 0.05,
  "modules_to_save": null,
  "peft_type": "LORA",
  "r": 16,
  "rank_pattern": {},
  "revision": null,
  "target_modules": [
    "q_proj",
    "v_proj",
    "down_proj"
  ],
  "task_type": "CAUSAL_LM",
  "use_dora": false,
  "use_rslora": true
}
`)
    expect(Object.keys(AdapterConfig.shape)).toHaveLength(19)
  })

  it('reads back to the same config', () => {
    expect(parseAdapterConfig(JSON.parse(adapterConfigJson(config)), 'x')).toEqual({ config, targetLayers: {}, unknownKeys: [] })
  })

  it('refuses values PEFT would not take', () => {
    expect(() => makeAdapterConfig({ rank: 0, alpha: 32, dropout: 0, targets: ['q_proj'], useDora: false, useRslora: false, baseModel: null })).toThrow()
    expect(() => makeAdapterConfig({ rank: 8, alpha: 32, dropout: 0, targets: [], useDora: false, useRslora: false, baseModel: null })).toThrow()
    expect(() => adapterConfigJson({ ...config, modules_to_save: ['lm_head'] as unknown as null })).toThrow()
  })

  it('scales by alpha / r, or alpha / √r with rsLoRA', () => {
    expect(adapterScaling({ r: 16, lora_alpha: 32, use_rslora: false })).toBe(2)
    expect(adapterScaling({ r: 16, lora_alpha: 32, use_rslora: true })).toBe(8)
  })
})
