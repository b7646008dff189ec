// PEFT adapter folders (reference.md, "PEFT adapter files"): adapters written by peft 0.21 for
// the golden llama (test/fixtures/peft/, made by make_fixtures.py) are read exactly and checked
// against the model; an adapter for another model is refused with the reason; what Attune writes
// is byte-identical to test/fixtures/peft/attune-written/, which make_fixtures.py loads with
// peft's LoraConfig.from_pretrained and PeftModel.from_pretrained (result in its docstring).
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeAdapterConfig, type AdapterConfig } from '../../src-main/domain/adapter/config'
import { AdapterError, type AdapterErrorCode } from '../../src-main/domain/adapter/errors'
import { encodeAdapter, readAdapter, writeAdapter, writeAdapterFiles, type AdapterContent, type AdapterTensor } from '../../src-main/domain/adapter/files'
import {
  adapterTensorKinds,
  adapterTensorName,
  adapterTensorShape,
  parseAdapterTensorName,
  targetModules,
  type ModelShape,
  type TargetModule,
} from '../../src-main/domain/adapter/names'
import { float32ToFloat16Bits, tensorToFloat32 } from '../../src-main/domain/safetensors/convert'
import { parseSafetensors, readSafetensorsFile } from '../../src-main/domain/safetensors/read'
import { serializeSafetensors, type TensorToWrite } from '../../src-main/domain/safetensors/write'

const fixtures = join(process.cwd(), 'test', 'fixtures', 'peft')
const llamaDir = join(process.cwd(), 'test', 'golden', 'fixtures', 'llama')
const regenerate = 'regenerate with `.venv/bin/python test/fixtures/peft/make_fixtures.py`'
/** The golden llama: hidden 64, 2 layers, 4 heads of 16, 2 kv heads, intermediate 96. */
const llama: ModelShape = { layers: 2, hidden: 64, intermediate: 96, heads: 4, kvHeads: 2, headDim: 16 }

interface Expected {
  tensors: Record<string, { dtype: string; shape: number[]; sum: number; first: number[]; max_abs_diff_from_weight_row_norms?: number }>
}

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'attune-adapter-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let count = 0
const fresh = (name: string) => join(dir, `${count++}-${name}`)

async function caught(promise: Promise<unknown>): Promise<AdapterError> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(AdapterError)
    return error as AdapterError
  }
  throw new Error('expected an AdapterError')
}

describe('tensor names', () => {
  it('names every weight as PEFT does, and parses the names back', () => {
    expect(adapterTensorName(0, 'q_proj', 'lora_A')).toBe('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')
    expect(adapterTensorName(31, 'down_proj', 'lora_B')).toBe('base_model.model.model.layers.31.mlp.down_proj.lora_B.weight')
    expect(adapterTensorName(2, 'v_proj', 'lora_magnitude_vector')).toBe('base_model.model.model.layers.2.self_attn.v_proj.lora_magnitude_vector')
    for (const layer of [0, 1, 9, 10, 127]) {
      for (const module of targetModules) {
        for (const kind of adapterTensorKinds) expect(parseAdapterTensorName(adapterTensorName(layer, module, kind))).toEqual({ layer, module, kind })
      }
    }
  })

  it('rejects every other name', () => {
    for (const name of [
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight',
      'base_model.model.model.layers.0.mlp.q_proj.lora_A.weight',
      'base_model.model.model.layers.0.self_attn.gate_proj.lora_B.weight',
      'base_model.model.model.layers.01.self_attn.q_proj.lora_A.weight',
      'base_model.model.model.layers.-1.self_attn.q_proj.lora_A.weight',
      'base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector.weight',
      'base_model.model.model.layers.0.self_attn.q_proj.weight',
      'base_model.model.lm_head.lora_A.weight',
      'base_model.model.model.embed_tokens.lora_embedding_A',
      'model.layers.0.self_attn.q_proj.lora_A.weight',
      '',
    ]) {
      expect(parseAdapterTensorName(name), name).toBeNull()
    }
    expect(() => adapterTensorName(-1, 'q_proj', 'lora_A')).toThrow(RangeError)
    expect(() => adapterTensorName(0, 'lm_head' as TargetModule, 'lora_A')).toThrow(RangeError)
  })

  it('gives every tensor its shape for a model', () => {
    const qwen3: ModelShape = { layers: 2, hidden: 64, intermediate: 96, heads: 4, kvHeads: 2, headDim: 32 }
    expect(adapterTensorShape(qwen3, 'q_proj', 'lora_A', 8)).toEqual([8, 64])
    expect(adapterTensorShape(qwen3, 'q_proj', 'lora_B', 8)).toEqual([128, 8])
    expect(adapterTensorShape(qwen3, 'k_proj', 'lora_B', 8)).toEqual([64, 8])
    expect(adapterTensorShape(qwen3, 'o_proj', 'lora_A', 8)).toEqual([8, 128])
    expect(adapterTensorShape(qwen3, 'down_proj', 'lora_A', 8)).toEqual([8, 96])
    expect(adapterTensorShape(qwen3, 'up_proj', 'lora_magnitude_vector', 8)).toEqual([96])
  })
})

describe.each([
  ['llama-lora-qv', { r: 4, lora_alpha: 8, lora_dropout: 0.05, use_dora: false, use_rslora: false, target_modules: ['q_proj', 'v_proj'] }, 8],
  ['llama-dora-all', { r: 4, lora_alpha: 16, lora_dropout: 0, use_dora: true, use_rslora: true, target_modules: [...targetModules] }, 42],
] as const)('%s (written by peft 0.21)', (name, settings, tensorCount) => {
  const folder = join(fixtures, name)
  const expected = JSON.parse(readFileSync(join(folder, 'expected.json'), 'utf8')) as Expected

  it('is read with its settings and every tensor exactly', async () => {
    const adapter = await readAdapter(folder, llama)
    expect(adapter.config).toMatchObject({ ...settings, peft_type: 'LORA', task_type: 'CAUSAL_LM', base_model_name_or_path: 'test/golden/fixtures/llama' })
    expect(adapter.unknownKeys).toEqual([])
    expect(adapter.tensors).toHaveLength(tensorCount)
    expect([...adapter.byName.keys()].sort(), regenerate).toEqual(Object.keys(expected.tensors).sort())
    for (const [tensorName, want] of Object.entries(expected.tensors)) {
      const tensor = adapter.byName.get(tensorName)!
      expect(want.dtype).toBe('float32')
      expect(tensor.shape, tensorName).toEqual(want.shape)
      expect([...tensor.data.subarray(0, 3)], tensorName).toEqual(want.first)
      const sum = tensor.data.reduce((a, b) => a + b, 0)
      expect(Math.abs(sum - want.sum), tensorName).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(want.sum)))
    }
    expect(adapter.get(1, settings.target_modules[0], 'lora_B').shape).toEqual(adapterTensorShape(llama, settings.target_modules[0], 'lora_B', 4))
  })

  it('is refused for a model of other sizes, with the reason', async () => {
    const wider = await caught(readAdapter(folder, { ...llama, hidden: 128 }))
    expect(wider.code).toBe('WRONG_MODEL')
    expect(wider.message).toBe(`adapter ${folder}: q_proj.lora_A has 64 inputs but this model's q_proj has 128 — it was trained for a different base model`)
    const headDim = await caught(readAdapter(folder, { ...llama, headDim: 32 }))
    expect(headDim.message).toBe(`adapter ${folder}: q_proj.lora_B has 64 outputs but this model's q_proj has 128 — it was trained for a different base model`)
    const deeper = await caught(readAdapter(folder, { ...llama, layers: 4 }))
    expect(deeper).toMatchObject({ code: 'WRONG_MODEL', message: `adapter ${folder}: has weights for 2 layers but this model has 4 — it was trained for a different base model` })
    const shallower = await caught(readAdapter(folder, { ...llama, layers: 1 }))
    expect(shallower).toMatchObject({ code: 'WRONG_MODEL', message: `adapter ${folder}: has weights for 2 layers but this model has 1 — it was trained for a different base model` })
  })
})

describe('DoRA magnitudes written by peft', () => {
  it('are the row norms of the base weights (reference.md, DoRA)', async () => {
    const adapter = await readAdapter(join(fixtures, 'llama-dora-all'), llama)
    const weights = await readSafetensorsFile(join(llamaDir, 'model.safetensors'))
    for (const layer of [0, 1]) {
      for (const module of targetModules) {
        const parent = module.endsWith('_proj') && ['gate_proj', 'up_proj', 'down_proj'].includes(module) ? 'mlp' : 'self_attn'
        const w = weights.tensors.get(`model.layers.${layer}.${parent}.${module}.weight`)!
        const values = tensorToFloat32(w)
        const [rows, cols] = w.shape as [number, number]
        const magnitude = adapter.get(layer, module, 'lora_magnitude_vector').data
        for (let row = 0; row < rows; row++) {
          let sum = 0
          for (let c = 0; c < cols; c++) sum += values[row * cols + c]! ** 2
          expect(Math.abs(Math.sqrt(sum) - magnitude[row]!)).toBeLessThan(1e-5 * magnitude[row]!)
        }
      }
    }
  })
})

// ---------------------------------------------------------------------------------------------
// Writing

/** mulberry32, so the written adapter is the same on every machine. */
function random(seed: number) {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A deterministic adapter for the golden llama: every tensor filled with small values. */
function sampleAdapter(config: AdapterConfig, model: ModelShape = llama): AdapterContent {
  const next = random(99)
  const tensors: AdapterTensor[] = []
  const kinds = config.use_dora ? adapterTensorKinds : (['lora_A', 'lora_B'] as const)
  for (let layer = 0; layer < model.layers; layer++) {
    for (const module of config.target_modules) {
      for (const kind of kinds) {
        const shape = adapterTensorShape(model, module, kind, config.r)
        const size = shape.reduce((a, b) => a * b, 1)
        const data = Float32Array.from({ length: size }, () => (kind === 'lora_magnitude_vector' ? 1 + next() : (next() * 2 - 1) * 0.125))
        tensors.push({ layer, module, kind, shape, data })
      }
    }
  }
  return { config, tensors }
}

const attuneConfig = makeAdapterConfig({ rank: 4, alpha: 8, dropout: 0.05, targets: ['v_proj', 'q_proj', 'k_proj'], useDora: true, useRslora: false, baseModel: 'test/golden/fixtures/llama' })

describe('writing adapters', () => {
  it('writes what test/fixtures/peft/attune-written holds (loaded by peft; see make_fixtures.py)', async () => {
    const files = encodeAdapter(sampleAdapter(attuneConfig))
    const committed = join(fixtures, 'attune-written')
    if (process.env.ATTUNE_UPDATE_FIXTURES === '1') {
      mkdirSync(committed, { recursive: true })
      for (const [file, data] of Object.entries(files)) writeFileSync(join(committed, file), data)
    }
    expect(readFileSync(join(committed, 'adapter_config.json'), 'utf8')).toBe(files['adapter_config.json'])
    expect(Buffer.from(readFileSync(join(committed, 'adapter_model.safetensors'))).equals(Buffer.from(files['adapter_model.safetensors'] as Uint8Array))).toBe(true)
    const weights = parseSafetensors(files['adapter_model.safetensors'] as Uint8Array)
    expect(weights.metadata).toEqual({ format: 'pt' })
    expect([...weights.tensors.values()].every((t) => t.dtype === 'F32')).toBe(true)
    expect(weights.tensors.size).toBe(18)
  })

  it('writes exactly the known keys of adapter_config.json', () => {
    const text = encodeAdapter(sampleAdapter(attuneConfig))['adapter_config.json'] as string
    expect(JSON.parse(text)).toEqual({
      alpha_pattern: {},
      base_model_name_or_path: 'test/golden/fixtures/llama',
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      layers_pattern: null,
      layers_to_transform: null,
      lora_alpha: 8,
      lora_dropout: 0.05,
      modules_to_save: null,
      peft_type: 'LORA',
      r: 4,
      rank_pattern: {},
      revision: null,
      target_modules: ['q_proj', 'k_proj', 'v_proj'],
      task_type: 'CAUSAL_LM',
      use_dora: true,
      use_rslora: false,
    })
  })

  it('reads back what it writes, and replaces an existing folder whole', async () => {
    const target = fresh('adapter')
    const lora = makeAdapterConfig({ rank: 2, alpha: 4, dropout: 0, targets: [...targetModules], useDora: false, useRslora: true, baseModel: null })
    await writeAdapter(target, sampleAdapter(lora), llama)
    const back = await readAdapter(target, llama)
    expect(back.config).toEqual(lora)
    expect(back.tensors).toHaveLength(2 * 7 * 2)
    for (const tensor of sampleAdapter(lora).tensors) {
      expect(back.get(tensor.layer, tensor.module, tensor.kind).data).toEqual(tensor.data)
    }
    writeFileSync(join(target, 'stray.txt'), 'old')
    await writeAdapter(target, sampleAdapter(attuneConfig))
    expect(readdirSync(target).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors'])
    expect((await readAdapter(target, llama)).config.use_dora).toBe(true)
  })

  it('writeAdapterFiles leaves the other files of a run folder alone', async () => {
    const out = fresh('run')
    mkdirSync(join(out, 'checkpoints', 'step-1'), { recursive: true })
    writeFileSync(join(out, 'metrics.jsonl'), '{"step":1}\n')
    await writeAdapterFiles(out, sampleAdapter(attuneConfig))
    expect(readdirSync(out).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'checkpoints', 'metrics.jsonl'])
    expect((await readAdapter(out, llama)).tensors).toHaveLength(18)
  })

  it('refuses an inconsistent adapter', () => {
    const good = sampleAdapter(attuneConfig)
    const expectBad = (adapter: AdapterContent, pattern: RegExp) => {
      expect(() => encodeAdapter(adapter, llama, 'out')).toThrow(pattern)
    }
    expectBad({ ...good, tensors: good.tensors.slice(1) }, /^out: lacks base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight/)
    expectBad({ ...good, tensors: [...good.tensors, good.tensors[0]!] }, /is given twice/)
    expectBad({ ...good, config: { ...good.config, use_dora: false } }, /has DoRA magnitudes .* but use_dora is false/)
    expectBad({ ...good, config: { ...good.config, r: 8 } }, /layer 0 q_proj\.lora_A has rank 4 but adapter_config\.json says r = 8/)
    expectBad({ ...good, config: { ...good.config, target_modules: ['q_proj', 'k_proj'] } }, /v_proj is not in target_modules/)
    expectBad({ ...good, config: { ...good.config, bias: 'all' as 'none' } }, /invalid adapter config: bias/)
    const [first, ...rest] = good.tensors
    expectBad({ ...good, tensors: [{ ...first!, data: new Float32Array(3) }, ...rest] }, /has 3 values for shape \[4, 64\]/)
    expectBad({ ...good, tensors: [{ ...first!, data: [1, 2] as unknown as Float32Array }, ...rest] }, /must be a Float32Array/)
    // Against the model.
    expect(() => encodeAdapter(good, { ...llama, hidden: 32 }, 'out')).toThrow(/q_proj\.lora_A has 64 inputs but this model's q_proj has 32/)
  })
})

// ---------------------------------------------------------------------------------------------
// Reading broken or foreign adapters

/** An adapter folder with the given config (object) and tensors (name → tensor). */
function folderWith(config: unknown, tensors: Map<string, TensorToWrite> | null, extra: Record<string, string> = {}): string {
  const folder = fresh('broken')
  mkdirSync(folder)
  if (config !== undefined) writeFileSync(join(folder, 'adapter_config.json'), typeof config === 'string' ? config : JSON.stringify(config))
  if (tensors) writeFileSync(join(folder, 'adapter_model.safetensors'), serializeSafetensors(tensors, { format: 'pt' }))
  for (const [file, text] of Object.entries(extra)) writeFileSync(join(folder, file), text)
  return folder
}

function tensorsOf(adapter: AdapterContent): Map<string, TensorToWrite> {
  return new Map(adapter.tensors.map((t) => [adapterTensorName(t.layer, t.module, t.kind), { dtype: 'F32', shape: t.shape, data: t.data.slice() }]))
}

describe('reading a broken or foreign adapter', () => {
  const good = sampleAdapter(attuneConfig)
  const config = JSON.parse(encodeAdapter(good)['adapter_config.json'] as string) as Record<string, unknown>

  it.each<[string, AdapterErrorCode, () => string, RegExp]>([
    ['a missing folder', 'NOT_AN_ADAPTER', () => join(dir, 'nothing-here'), /is not a PEFT adapter folder: it has no adapter_config\.json$/],
    ['no weights', 'NOT_AN_ADAPTER', () => folderWith(config, null), /is not a PEFT adapter folder: it has no adapter_model\.safetensors$/],
    ['pickle weights only', 'NOT_AN_ADAPTER', () => folderWith(config, null, { 'adapter_model.bin': 'x' }), /has adapter_model\.bin \(a pickle\) but no adapter_model\.safetensors/],
    ['a config that is not JSON', 'INVALID_CONFIG', () => folderWith('{"r": 4,', tensorsOf(good)), /adapter_config\.json: is not valid JSON/],
    ['damaged weights', 'INVALID_WEIGHTS', () => {
      const folder = folderWith(config, tensorsOf(good))
      writeFileSync(join(folder, 'adapter_model.safetensors'), readFileSync(join(folder, 'adapter_model.safetensors')).subarray(0, 500))
      return folder
    }, /adapter_model\.safetensors: the header claims \d+ bytes .*cut short/],
    ['an lm_head weight', 'INVALID_WEIGHTS', () => folderWith(config, new Map([...tensorsOf(good), ['base_model.model.lm_head.weight', { dtype: 'F32', shape: [1], data: new Float32Array(1) }]])), /tensor "base_model\.model\.lm_head\.weight" is not a LoRA weight of q_proj, k_proj, v_proj/],
    ['a missing tensor', 'INVALID_WEIGHTS', () => {
      const tensors = tensorsOf(good)
      tensors.delete(adapterTensorName(1, 'k_proj', 'lora_B'))
      return folderWith(config, tensors)
    }, /lacks base_model\.model\.model\.layers\.1\.self_attn\.k_proj\.lora_B\.weight \(every layer of every target module needs lora_A, lora_B, lora_magnitude_vector\)/],
    ['a module not in target_modules', 'INVALID_WEIGHTS', () => folderWith({ ...config, target_modules: ['q_proj', 'k_proj'] }, tensorsOf(good)), /has base_model.*v_proj.* but v_proj is not in target_modules \(q_proj, k_proj\)/],
    ['magnitudes without use_dora', 'INVALID_WEIGHTS', () => folderWith({ ...config, use_dora: false }, tensorsOf(good)), /has DoRA magnitudes/],
    ['another rank than r', 'INVALID_WEIGHTS', () => folderWith({ ...config, r: 8 }, tensorsOf(good)), /layer 0 q_proj\.lora_A has rank 4 but adapter_config\.json says r = 8/],
    ['integer weights', 'INVALID_WEIGHTS', () => folderWith(config, new Map([...tensorsOf(good)].map(([n, t]) => [n, { ...t, dtype: 'I32' as const, data: new Int32Array(t.data.length) }]))), /is I32; adapter weights must be floating point/],
    ['a NaN', 'INVALID_WEIGHTS', () => {
      const tensors = tensorsOf(good)
      ;(tensors.get(adapterTensorName(1, 'v_proj', 'lora_A'))!.data as Float32Array)[5] = NaN
      return folderWith(config, tensors)
    }, /layers\.1\.self_attn\.v_proj\.lora_A\.weight holds NaN at index 5; the adapter is broken/],
    ['one layer of the targets only', 'UNSUPPORTED', () => folderWith({ ...config, target_modules: ['model.layers.0.self_attn.q_proj', 'k_proj', 'v_proj'] }, tensorsOf(good)), /target_modules adapts q_proj in some layers only \(not in layer 1\)/],
    ['a rank_pattern', 'UNSUPPORTED', () => folderWith({ ...config, rank_pattern: { q_proj: 8 } }, tensorsOf(good)), /rank_pattern \{"q_proj":8\} gives some modules another rank than r/],
  ])('%s → %s', async (_label, code, make, message) => {
    const error = await caught(readAdapter(make(), llama))
    expect(error.code).toBe(code)
    expect(error.message).toMatch(message)
  })

  it('reads float16 weights as float32', async () => {
    const tensors = new Map([...tensorsOf(good)].map(([n, t]) => [n, { ...t, dtype: 'F16' as const, data: float32ToFloat16Bits(t.data as Float32Array) }]))
    const adapter = await readAdapter(folderWith(config, tensors), llama)
    const a = adapter.get(0, 'q_proj', 'lora_A').data
    const original = good.tensors[0]!.data
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - original[i]!)).toBeLessThanOrEqual(Math.abs(original[i]!) * 2 ** -11 + 2 ** -25)
  })

})
