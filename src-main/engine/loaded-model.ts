// The worker keeps the last model it loaded (weights memory-mapped, tokenizer, chat template), so
// a chat of many turns or an evaluation after a generation does not reload it. One at a time:
// a model can be many gigabytes, and the user works with one base model at once.
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { ApiError } from '../contract/errors'
import { findChatTemplate, type ChatTemplate } from '../domain/chat/template'
import { loadTokenizer } from '../domain/tokenizer/load'
import type { ModelTokenizer } from '../domain/tokenizer/model-tokenizer'
import { adapterScaling } from '../domain/adapter/config'
import { AdapterError } from '../domain/adapter/errors'
import { readAdapter } from '../domain/adapter/files'
import type { EngineAddon, NativeModel } from './addon'
import { inferenceAdapter } from './inference-adapter'

export interface LoadedModel {
  dir: string
  threads: number
  native: NativeModel
  tokenizer: ModelTokenizer
  template: ChatTemplate | null
  /** The adapter folder applied now, if any. */
  adapterDir: string | null
}

let current: Promise<LoadedModel> | undefined
let currentKey = ''

/** Errors from reading the model's own files are the user's to fix: they name the file. */
function asUserError(error: unknown): never {
  if (error instanceof ApiError) throw error
  const named = error instanceof Error ? error.name : ''
  if (['TokenizerFileError', 'ChatError'].includes(named)) throw new ApiError('USER_ERROR', (error as Error).message)
  throw error
}

export function useModel(
  addon: EngineAddon,
  modelDir: string,
  threads: number = availableParallelism(),
  options: { quantizeNf4?: boolean } = {},
): Promise<LoadedModel> {
  const dir = resolve(modelDir)
  const quantizeNf4 = options.quantizeNf4 === true
  const key = `${dir}\n${threads}\n${quantizeNf4}`
  if (current && key === currentKey) return current
  const previous = current
  currentKey = key
  current = (async () => {
    // Free the previous model before mapping the next: both may not fit at once.
    await previous?.then((loaded) => loaded.native.close()).catch(() => {})
    try {
      const tokenizer = loadTokenizer(dir)
      const template = findChatTemplate(dir)
      const native = await addon.loadModel(dir, threads, { quantizeNf4 })
      return { dir, threads, native, tokenizer, template, adapterDir: null }
    } catch (error) {
      asUserError(error)
    }
  })()
  // A failed load is not cached: the user may fix the folder and try again.
  current.catch(() => {
    if (currentKey === key) {
      current = undefined
      currentKey = ''
    }
  })
  return current
}

/**
 * Applies the PEFT adapter in `adapterDir` (unmerged: switching needs no reload), or removes the
 * current one when undefined. An adapter for another base model is refused with the reason.
 */
export async function applyAdapter(loaded: LoadedModel, adapterDir: string | undefined): Promise<void> {
  const wanted = adapterDir === undefined ? null : resolve(adapterDir)
  if (wanted === loaded.adapterDir) return
  if (wanted === null) {
    loaded.native.clearAdapter()
    loaded.adapterDir = null
    return
  }
  const info = loaded.native.info()
  let adapter
  try {
    adapter = await readAdapter(wanted, { layers: info.layers, hidden: info.hiddenSize, intermediate: info.intermediateSize, heads: info.heads, kvHeads: info.kvHeads, headDim: info.headDim })
  } catch (error) {
    if (error instanceof AdapterError) throw new ApiError('USER_ERROR', error.message)
    throw error
  }
  loaded.native.setAdapter(inferenceAdapter(adapter.tensors, { rank: adapter.config.r, scaling: adapterScaling(adapter.config), dora: adapter.config.use_dora }))
  loaded.adapterDir = wanted
}

