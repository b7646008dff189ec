// Text generation in the worker: encode the prompt (or render the conversation through the
// model's chat template), run the native generator, and stream the decoded text as it grows.
import { randomInt } from 'node:crypto'
import { ApiError } from '../../contract/errors'
import { renderChat } from '../../domain/chat/render'
import type { EngineAddon, NativeCancelToken } from '../addon'
import { applyAdapter, useModel, type LoadedModel } from '../loaded-model'
import type { ParsedParamsOf, ProgressOf, ResultOf } from '../protocol'

function promptIds(loaded: LoadedModel, input: ParsedParamsOf<'generate'>['input']): number[] {
  if (input.kind === 'prompt') return loaded.tokenizer.encode(input.text, { addSpecialTokens: true })
  if (!loaded.template) {
    throw new ApiError('USER_ERROR', `${loaded.dir} has no chat template, so it cannot answer messages; use --prompt with plain text.`)
  }
  // The rendered text carries its own special tokens (a template that wants a BOS emits it).
  const text = renderChat(loaded.template, input.messages, { addGenerationPrompt: true, specialTokens: loaded.tokenizer.specialTokens.named })
  return loaded.tokenizer.encode(text, { addSpecialTokens: false })
}

export async function generate(
  addon: EngineAddon,
  params: ParsedParamsOf<'generate'>,
  onProgress: (progress: ProgressOf<'generate'>) => void,
  cancel: NativeCancelToken,
): Promise<ResultOf<'generate'>> {
  const loaded = await useModel(addon, params.modelDir, params.threads)
  await applyAdapter(loaded, params.adapterDir)
  const ids = promptIds(loaded, params.input)
  if (ids.length === 0) throw new ApiError('USER_ERROR', 'The prompt is empty: give some text to continue.')
  // A prompt answers until the end-of-sequence token; a chat answer also ends at end-of-turn.
  const stopIds = params.input.kind === 'messages' ? loaded.tokenizer.stopIds : loaded.tokenizer.eosIds
  const stops = new Set(stopIds)
  const decoder = loaded.tokenizer.createStreamDecoder()
  let text = ''
  const emit = (piece: string) => {
    if (piece.length === 0) return
    text += piece
    onProgress({ text: piece })
  }
  const { sampling } = params
  const result = await loaded.native.generate(
    Int32Array.from(ids),
    {
      maxNewTokens: sampling.maxNewTokens,
      temperature: sampling.temperature,
      topP: sampling.topP,
      topK: sampling.topK,
      repetitionPenalty: sampling.repetitionPenalty,
      seed: sampling.seed ?? randomInt(2 ** 47),
      stopIds: Int32Array.from(stopIds),
    },
    // The stop token ends the answer; it is not part of its text.
    (token) => {
      if (!stops.has(token)) emit(decoder.push(token))
    },
    cancel,
  )
  emit(decoder.flush())
  return {
    text,
    promptTokens: ids.length,
    completionTokens: result.tokens.length,
    finishReason: result.finishReason,
    prefillMs: result.prefillMs,
    decodeMs: result.decodeMs,
  }
}
