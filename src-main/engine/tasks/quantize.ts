// `attune quantize` in the worker (cli.md): a full-precision model folder → a bitsandbytes NF4
// 4-bit model folder that transformers loads. The native engine writes the weights
// (native/src/quant/quantize_model.h: every decoder linear weight as bitsandbytes' Linear4bit
// stores it, everything else as it was) into a temporary sibling of --out; this adds config.json
// with the quantization_config transformers writes for such a model and copies the tokenizer,
// generation and other small files; then the folder is swapped in at once
// (services/atomic-file.ts). Any failure, or a cancel, removes the temporary folder: --out is
// then as it was.
import { readdir, readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { ApiError } from '../../contract/errors'
import { fillFolderAtomic } from '../../services/atomic-file'
import type { EngineAddon, NativeCancelToken, NativeQuantizeResult } from '../addon'
import type { ParsedParamsOf, ProgressOf, ResultOf } from '../protocol'

/** Weights in any format, and shard indexes: never copied (the new weights replace them). */
const weightsFile = /\.(safetensors|bin|pt|pth|ckpt|gguf|ggml|h5|msgpack|onnx|onnx_data|ot|tflite|npz|pkl|pickle)$|\.index\.json$/i

/**
 * The quantization_config transformers 5.18 saves with a model loaded in 4-bit NF4:
 * BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=…,
 * bnb_4bit_compute_dtype=…).to_dict(), in the sorted key order of its config.json.
 */
export function quantizationConfig(computeDtype: string, doubleQuant: boolean): Record<string, unknown> {
  const config: Record<string, unknown> = {
    _load_in_4bit: true,
    _load_in_8bit: false,
    bnb_4bit_compute_dtype: computeDtype,
    bnb_4bit_quant_storage: 'uint8',
    bnb_4bit_quant_type: 'nf4',
    bnb_4bit_use_double_quant: doubleQuant,
    llm_int8_enable_fp32_cpu_offload: false,
    llm_int8_has_fp16_weight: false,
    llm_int8_skip_modules: null,
    llm_int8_threshold: 6.0,
    load_in_4bit: true,
    load_in_8bit: false,
    quant_method: 'bitsandbytes',
  }
  return config
}

/** A value as Python's json.dumps writes it (floats keep their ".0"; ASCII strings only here). */
function pythonJson(value: unknown, depth: number): string {
  if (value === null) return 'null'
  if (typeof value === 'boolean') return value ? 'true' : 'false'
  if (typeof value === 'number') return Number.isInteger(value) ? value.toFixed(1) : String(value)
  if (typeof value === 'string') return JSON.stringify(value)
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  if (entries.length === 0) return '{}'
  const inner = '  '.repeat(depth + 1)
  return `{\n${entries.map(([key, v]) => `${inner}${JSON.stringify(key)}: ${pythonJson(v, depth + 1)}`).join(',\n')}\n${'  '.repeat(depth)}}`
}

/**
 * config.json's text with `"quantization_config": {…}` added as its last key, formatted as
 * transformers formats it (indent 2, sorted keys); every other byte stays as it was, so numbers
 * such as 1e-05 or 10000.0 read back exactly as before.
 */
export function withQuantizationConfig(text: string, config: Record<string, unknown>): string {
  const end = text.lastIndexOf('}')
  const before = text.slice(0, end).replace(/\s+$/, '')
  const separator = before.endsWith('{') ? '' : ','
  return `${before}${separator}\n  "quantization_config": ${pythonJson(config, 1)}\n}${text.slice(end + 1)}`
}

function userError(message: string): never {
  throw new ApiError('USER_ERROR', message)
}

async function statOrNull(path: string) {
  try {
    return await stat(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw error
  }
}

/** The source's config.json, parsed; refuses a model that is already quantized. */
async function readSourceConfig(modelDir: string): Promise<{ text: string; config: Record<string, unknown> }> {
  const info = await statOrNull(modelDir)
  if (!info) userError(`The model folder ${modelDir} does not exist.`)
  if (!info.isDirectory()) userError(`${modelDir} is not a folder; attune quantize needs a model folder (config.json and safetensors weights).`)
  const path = join(modelDir, 'config.json')
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') userError(`${modelDir} has no config.json; attune quantize needs a Hugging Face model folder (config.json and safetensors weights).`)
    userError(`Cannot read ${path}: ${(error as Error).message}`)
  }
  let config: unknown
  try {
    config = JSON.parse(text)
  } catch (error) {
    userError(`${path} is not valid JSON (${(error as Error).message}).`)
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) userError(`${path} must hold a JSON object.`)
  const record = config as Record<string, unknown>
  const quant = record.quantization_config
  if (quant !== undefined && quant !== null) {
    const q = (typeof quant === 'object' ? quant : {}) as Record<string, unknown>
    const method = typeof q.quant_method === 'string' ? q.quant_method : 'bitsandbytes'
    const what = method !== 'bitsandbytes' ? method : q.load_in_8bit === true ? 'bitsandbytes 8-bit' : q.load_in_4bit === true ? 'bitsandbytes 4-bit' : 'bitsandbytes'
    userError(`${modelDir} is already quantized (${what}: its config.json has a quantization_config); quantize the full-precision model it came from instead.`)
  }
  return { text, config: record }
}

/** --out must be new, or an empty folder; never the model folder. */
async function checkOutDir(outDir: string, modelDir: string): Promise<void> {
  if (outDir === modelDir) userError(`--out must be a new folder, not the model folder ${modelDir} itself.`)
  const info = await statOrNull(outDir)
  if (!info) return
  if (!info.isDirectory()) userError(`${outDir} exists and is not a folder; choose a new --out folder.`)
  if ((await readdir(outDir)).length > 0) userError(`${outDir} already exists and is not empty; choose a new --out folder, or remove this one first.`)
}

/** The source's files that go along unchanged: tokenizer, generation config, chat template, README, licence… */
async function filesToCopy(modelDir: string): Promise<string[]> {
  const names: string[] = []
  for (const entry of await readdir(modelDir, { withFileTypes: true })) {
    const name = entry.name
    if (name === 'config.json' || name.startsWith('.') || weightsFile.test(name)) continue
    // Model stores may hold links to the files (the Hugging Face cache does): follow them.
    const isFile = entry.isFile() || (entry.isSymbolicLink() && (await statOrNull(join(modelDir, name)))?.isFile() === true)
    if (isFile) names.push(name)
  }
  return names.sort()
}

const cancelled = () => new ApiError('CANCELLED', 'Quantizing was cancelled; nothing was written.')

/** Native errors name the file and tensor; bad input (a full disk included) is the user's to fix. */
function fromNative(error: unknown): never {
  const code = (error as { code?: unknown } | null)?.code
  if (code === 'CANCELLED') throw cancelled()
  if (code === 'INVALID_ARGUMENT') throw new ApiError('USER_ERROR', (error as Error).message)
  throw error
}

export async function quantize(
  addon: EngineAddon,
  params: ParsedParamsOf<'quantize'>,
  onProgress: (progress: ProgressOf<'quantize'>) => void,
  cancel: NativeCancelToken,
): Promise<ResultOf<'quantize'>> {
  const modelDir = resolve(params.modelDir)
  const outDir = resolve(params.outDir)
  const source = await readSourceConfig(modelDir)
  await checkOutDir(outDir, modelDir)

  return fillFolderAtomic(outDir, async (tempDir, writeFile) => {
    let native: NativeQuantizeResult
    try {
      native = await addon.quantizeModel(
        modelDir,
        tempDir,
        { blocksize: params.blocksize, doubleQuant: params.doubleQuant, maxShardBytes: params.maxShardBytes, threads: params.threads ?? 0 },
        ({ done, total, tensor }) => onProgress({ phase: 'quantizing', done, total, tensor }),
        cancel,
      )
    } catch (error) {
      fromNative(error)
    }
    const steps = { done: native.sourceTensors, total: native.sourceTensors }
    onProgress({ phase: 'finishing', ...steps })
    for (const name of await filesToCopy(modelDir)) {
      if (cancel.cancelled) throw cancelled()
      await writeFile(name, await readFile(join(modelDir, name)))
    }
    const config = quantizationConfig(native.weightDtype, params.doubleQuant)
    await writeFile('config.json', withQuantizationConfig(source.text, config))
    if (cancel.cancelled) throw cancelled()
    // Someone may have filled --out meanwhile: the swap would set their files aside, so stop.
    await checkOutDir(outDir, modelDir)
    return {
      outDir,
      files: (await readdir(tempDir)).sort(),
      weightsFiles: native.files,
      sourceTensors: native.sourceTensors,
      quantizedWeights: native.quantizedWeights,
      tensorsWritten: native.tensorsWritten,
      totalSize: native.totalSize,
      quantizationConfig: config,
    }
  })
}
