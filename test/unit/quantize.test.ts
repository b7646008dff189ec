// attune quantize end to end (worker process → native quantizer → files) on the golden models:
// the folder is a bitsandbytes NF4 checkpoint (keys, dtypes, config.json's quantization_config,
// copied tokenizer files), Attune loads and runs it, and its loss is exactly the loss of the
// original model run on its NF4 double-quantized weights (LoadOptions.quantize_nf4: the same codes,
// dequantized the same way). Bad input is refused in plain words and leaves nothing behind.
import { spawnSync } from 'node:child_process'
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { ApiError } from '../../src-main/contract/errors'
import { encodeRecord } from '../../src-main/domain/dataset/encode'
import { readSafetensorsHeader } from '../../src-main/domain/safetensors/read'
import { loadTokenizer } from '../../src-main/domain/tokenizer/load'
import { loadAddon, type EngineAddon } from '../../src-main/engine/addon'
import { EngineHost, forkSpawner } from '../../src-main/engine/host'
import type { QuantizeProgress } from '../../src-main/engine/quantize-protocol'
import { goldenDir } from './support/golden'

const host = new EngineHost({ spawner: forkSpawner(inject('engineWorkerPath')) })
const scratch = mkdtempSync(join(tmpdir(), 'attune-quantize-'))
let addon: EngineAddon
beforeAll(() => {
  addon = loadAddon()
})
afterAll(async () => {
  await host.dispose()
  rmSync(scratch, { recursive: true, force: true })
})

const linear = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']
const texts = ['The quick brown fox jumps over the lazy dog.', 'Once upon a time there was a robot who wrote poems.', 'Rain fell softly on the old stone bridge.']

function expectedQuantizationConfig(computeDtype: string, doubleQuant: boolean) {
  // BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", …).to_dict() in transformers 5.18.
  return {
    _load_in_4bit: true,
    _load_in_8bit: false,
    bnb_4bit_compute_dtype: computeDtype,
    bnb_4bit_quant_storage: 'uint8',
    bnb_4bit_quant_type: 'nf4',
    bnb_4bit_use_double_quant: doubleQuant,
    llm_int8_enable_fp32_cpu_offload: false,
    llm_int8_has_fp16_weight: false,
    llm_int8_skip_modules: null,
    llm_int8_threshold: 6,
    load_in_4bit: true,
    load_in_8bit: false,
    quant_method: 'bitsandbytes',
  }
}

/** Every tensor of a folder's weights (single file or shards): name → {dtype, shape}. */
async function weightsOf(dir: string): Promise<Map<string, { dtype: string; shape: number[]; file: string }>> {
  const files = existsSync(join(dir, 'model.safetensors'))
    ? ['model.safetensors']
    : [...new Set(Object.values((JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> }).weight_map))]
  const out = new Map<string, { dtype: string; shape: number[]; file: string }>()
  for (const file of files) {
    const header = await readSafetensorsHeader(join(dir, file))
    expect(header.metadata).toEqual({ format: 'pt' })
    for (const t of header.tensors.values()) out.set(t.name, { dtype: t.dtype, shape: t.shape, file })
  }
  return out
}

/** Σ cross-entropy / targets of `texts` as attune eval encodes them, with the addon directly. */
async function directLoss(modelDir: string, quantizeNf4: boolean, seqLen: number): Promise<number> {
  const tokenizer = loadTokenizer(modelDir)
  const model = await addon.loadModel(modelDir, availableParallelism(), { quantizeNf4 })
  try {
    let sum = 0
    let count = 0
    for (const text of texts) {
      const { ids, labels } = encodeRecord({ kind: 'text', text }, { tokenizer, template: null, seqLen })
      const loss = await model.sequenceLoss(Int32Array.from(ids), Int32Array.from(labels), new addon.CancelToken())
      sum += loss.sum
      count += loss.count
    }
    return sum / count
  } finally {
    model.close()
  }
}

const dataFile = join(scratch, 'data.jsonl')
writeFileSync(dataFile, texts.map((text) => JSON.stringify({ text })).join('\n') + '\n')

describe.each(['llama', 'qwen2'])('%s', (name) => {
  const modelDir = join(goldenDir, name)
  const outDir = join(scratch, `${name}-nf4`)

  it('writes a bitsandbytes NF4 checkpoint folder', async () => {
    const progress: QuantizeProgress[] = []
    const result = await host.call('quantize', { modelDir, outDir }, { onProgress: (p) => progress.push(p) })
    const sourceFiles = readdirSync(modelDir).filter((f) => !f.endsWith('.safetensors'))
    expect(result.files).toEqual([...sourceFiles, 'model.safetensors'].sort())
    expect(readdirSync(outDir).sort()).toEqual(result.files)
    expect(result.weightsFiles).toEqual(['model.safetensors'])
    expect(result.quantizedWeights).toBe(2 * 7)
    // Tokenizer and generation files are copied byte for byte.
    for (const file of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
      expect(readFileSync(join(outDir, file))).toEqual(readFileSync(join(modelDir, file)))
    }
    // config.json: the source's, plus the quantization_config transformers writes.
    const source = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>
    const config = JSON.parse(readFileSync(join(outDir, 'config.json'), 'utf8')) as Record<string, unknown>
    expect(config).toEqual({ ...source, quantization_config: expectedQuantizationConfig('float32', true) })
    expect(readFileSync(join(outDir, 'config.json'), 'utf8')).toContain('    "llm_int8_threshold": 6.0,\n')
    expect(result.quantizationConfig).toEqual(expectedQuantizationConfig('float32', true))
    // Every decoder linear weight as bitsandbytes stores it; everything else as it was.
    const original = await weightsOf(modelDir)
    const written = await weightsOf(outDir)
    const expected = new Map<string, string>()
    for (const [tensor, info] of original) {
      if (!linear.some((l) => tensor.endsWith(`.${l}.weight`))) {
        expected.set(tensor, info.dtype)
        expect(written.get(tensor)?.shape).toEqual(info.shape)
        continue
      }
      const n = info.shape[0]! * info.shape[1]!
      const blocks = Math.ceil(n / 64)
      const pieces: Array<[string, string, number[]]> = [
        ['', 'U8', [n / 2, 1]],
        ['.absmax', 'U8', [blocks]],
        ['.quant_map', 'F32', [16]],
        ['.nested_absmax', 'F32', [Math.ceil(blocks / 256)]],
        ['.nested_quant_map', 'F32', [256]],
      ]
      for (const [suffix, dtype, shape] of pieces) {
        expected.set(tensor + suffix, dtype)
        expect(written.get(tensor + suffix)?.shape).toEqual(shape)
      }
      expected.set(`${tensor}.quant_state.bitsandbytes__nf4`, 'U8')
    }
    expect(new Map([...written].map(([tensor, info]) => [tensor, info.dtype]))).toEqual(expected)
    expect(result.tensorsWritten).toBe(written.size)
    // Progress streamed, ending at total; then the finishing step.
    const quantizing = progress.filter((p) => p.phase === 'quantizing')
    expect(quantizing.length).toBeGreaterThan(0)
    expect(quantizing.at(-1)).toMatchObject({ done: original.size + 14, total: original.size + 14 })
    expect(progress.at(-1)?.phase).toBe('finishing')
    // Nothing left beside it.
    expect(readdirSync(scratch).filter((f) => f.startsWith('.'))).toEqual([])
  })

  it('loads in Attune and generates', async () => {
    const result = await host.call('generate', { modelDir: outDir, input: { kind: 'prompt', text: 'Once upon a time' }, sampling: { maxNewTokens: 12 } })
    expect(result.completionTokens).toBeGreaterThan(0)
  })

  it("evaluates to exactly the original's loss on its NF4 double-quantized weights", async () => {
    const evaluated = await host.call('evaluate', { modelDir: outDir, dataFile, seqLen: 64 })
    expect(evaluated.loss).toBe(await directLoss(modelDir, true, 64))
    // …and the quantization did change the model.
    expect(evaluated.loss).not.toBe(await directLoss(modelDir, false, 64))
  })
})

describe('options', () => {
  const modelDir = join(goldenDir, 'llama')

  it('--no-double-quant and another block size give a loadable checkpoint', async () => {
    const outDir = join(scratch, 'llama-nf4-plain')
    const result = await host.call('quantize', { modelDir, outDir, blocksize: 128, doubleQuant: false })
    expect(result.quantizationConfig).toEqual(expectedQuantizationConfig('float32', false))
    const written = await weightsOf(outDir)
    expect(written.get('model.layers.0.mlp.up_proj.weight.absmax')).toMatchObject({ dtype: 'F32', shape: [(96 * 64) / 128] })
    expect(written.has('model.layers.0.mlp.up_proj.weight.nested_absmax')).toBe(false)
    const state = readQuantState(outDir, 'model.layers.0.mlp.up_proj.weight')
    expect(state).toBe('{"quant_type": "nf4", "blocksize": 128, "dtype": "float32", "shape": [96, 64]}')
    const evaluated = await host.call('evaluate', { modelDir: outDir, dataFile, seqLen: 64 })
    expect(Number.isFinite(evaluated.loss)).toBe(true)
  })

  it('shards a large model, and the shards load to the same model', async () => {
    const outDir = join(scratch, 'llama-nf4-sharded')
    const result = await host.call('quantize', { modelDir, outDir, maxShardBytes: 100_000 })
    expect(result.weightsFiles.at(-1)).toBe('model.safetensors.index.json')
    expect(result.weightsFiles.length).toBeGreaterThan(2)
    expect(result.weightsFiles[0]).toMatch(/^model-00001-of-0000\d\.safetensors$/)
    const index = JSON.parse(readFileSync(join(outDir, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number } }
    expect(index.metadata.total_size).toBe(result.totalSize)
    const single = await host.call('evaluate', { modelDir: join(scratch, 'llama-nf4'), dataFile, seqLen: 64 })
    const sharded = await host.call('evaluate', { modelDir: outDir, dataFile, seqLen: 64 })
    expect(sharded.loss).toBe(single.loss)
  })
})

function readQuantState(dir: string, weight: string): string {
  const bytes = readFileSync(join(dir, 'model.safetensors'))
  const headerLength = Number(bytes.readBigUInt64LE(0))
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { data_offsets: [number, number] }>
  const [begin, end] = header[`${weight}.quant_state.bitsandbytes__nf4`]!.data_offsets
  return bytes.subarray(8 + headerLength + begin, 8 + headerLength + end).toString('utf8')
}

describe('refusals', () => {
  const modelDir = join(goldenDir, 'llama')
  const refusal = async (params: { modelDir: string; outDir: string }, text: string) => {
    const error = await host.call('quantize', params).then(
      () => null,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ code: 'USER_ERROR', message: expect.stringContaining(text) })
  }

  it('refuses a model that is already 4-bit', async () => {
    const quantized = join(scratch, 'llama-nf4')
    if (!existsSync(quantized)) await host.call('quantize', { modelDir, outDir: quantized })
    await refusal({ modelDir: quantized, outDir: join(scratch, 'twice') }, `${quantized} is already quantized (bitsandbytes 4-bit`)
    expect(existsSync(join(scratch, 'twice'))).toBe(false)
  })

  it('names a missing model folder', async () => {
    const missing = join(scratch, 'no-such-model')
    await refusal({ modelDir: missing, outDir: join(scratch, 'x') }, `The model folder ${missing} does not exist`)
  })

  it('never writes over a folder with files in it, nor over the model', async () => {
    const taken = join(scratch, 'taken')
    mkdirSync(taken)
    writeFileSync(join(taken, 'mine.txt'), 'keep me')
    await refusal({ modelDir, outDir: taken }, `${taken} already exists and is not empty`)
    expect(readdirSync(taken)).toEqual(['mine.txt'])
    await refusal({ modelDir, outDir: modelDir }, 'not the model folder')
    // An empty folder is fine: it becomes the model.
    const empty = join(scratch, 'empty')
    mkdirSync(empty)
    await host.call('quantize', { modelDir, outDir: empty, doubleQuant: false })
    expect(readdirSync(empty)).toContain('model.safetensors')
  })

  it('leaves nothing behind when a weight is broken, and names it', async () => {
    const broken = join(scratch, 'broken-model')
    mkdirSync(broken)
    for (const file of readdirSync(modelDir)) copyFileSync(join(modelDir, file), join(broken, file))
    // A NaN in layer 1's gate_proj (F32), where the header says the tensor lies.
    const weights = join(broken, 'model.safetensors')
    const header = await readSafetensorsHeader(weights)
    const tensor = header.tensors.get('model.layers.1.mlp.gate_proj.weight')!
    const fd = openSync(weights, 'r+')
    const nan = Buffer.alloc(4)
    nan.writeFloatLE(Number.NaN)
    writeSync(fd, nan, 0, 4, header.dataStart + tensor.dataOffsets[0] + 4 * 7)
    closeSync(fd)
    const outDir = join(scratch, 'from-broken')
    for (const doubleQuant of [true, false]) {
      const error = await host.call('quantize', { modelDir: broken, outDir, doubleQuant }).catch((e: unknown) => e)
      expect(error).toMatchObject({ code: 'USER_ERROR' })
      expect((error as Error).message).toContain(`${weights}: Tensor "model.layers.1.mlp.gate_proj.weight" holds a value that is not finite`)
      expect(existsSync(outDir)).toBe(false)
      expect(readdirSync(scratch).filter((f) => f.startsWith('.'))).toEqual([])
    }
  })
})

describe('attune quantize (the command)', () => {
  const cliEntry = join(process.cwd(), 'out', 'main', 'cli.js')
  const attune = (...args: string[]) => {
    const result = spawnSync(process.execPath, ['bin/attune.js', ...args], { encoding: 'utf8', env: { ...process.env, ATTUNE_HOME: join(scratch, 'home') } })
    return { code: result.status, stdout: result.stdout, stderr: result.stderr }
  }

  it('quantizes, streaming progress to stderr', () => {
    if (!existsSync(cliEntry)) throw new Error(`${cliEntry} is missing: run "npm run build" before these tests (npm test does).`)
    const outDir = join(scratch, 'cli-out')
    const run = attune('quantize', join(goldenDir, 'qwen2'), '--out', outDir, '--blocksize', '128')
    expect(run.code).toBe(0)
    expect(run.stderr).toMatch(/quantizing: (\d+)\/\1 tensors/)
    expect(run.stdout).toContain(`4-bit NF4 model written to ${outDir}`)
    expect(JSON.parse(readFileSync(join(outDir, 'config.json'), 'utf8')).quantization_config.bnb_4bit_use_double_quant).toBe(true)
    const json = attune('quantize', join(goldenDir, 'llama'), '--out', join(scratch, 'cli-json'), '--no-double-quant', '--max-shard-size', '100KB', '--json')
    expect(json.code).toBe(0)
    expect(JSON.parse(json.stdout)).toMatchObject({ quantizedWeights: 14, quantizationConfig: { bnb_4bit_use_double_quant: false } })
  })

  it('explains bad input in one sentence with exit code 1', () => {
    if (!existsSync(cliEntry)) throw new Error(`${cliEntry} is missing: run "npm run build" before these tests (npm test does).`)
    const missing = join(scratch, 'nowhere')
    for (const [args, text] of [
      [[missing, '--out', join(scratch, 'o1')], `The model folder ${missing} does not exist`],
      [[join(goldenDir, 'llama')], '--out is required'],
      [['--out', join(scratch, 'o2')], 'needs the model folder'],
      [[join(goldenDir, 'llama'), '--out', join(scratch, 'o3'), '--blocksize', '48'], '--blocksize must be a power of two'],
      [[join(goldenDir, 'llama'), '--out', join(scratch, 'o4'), '--max-shard-size', 'big'], '--max-shard-size must be a size'],
    ] as Array<[string[], string]>) {
      const run = attune('quantize', ...args)
      expect(run.code).toBe(1)
      expect(run.stderr).toContain(text)
      expect(run.stderr).not.toMatch(/\n\s+at /)
    }
  })
})
