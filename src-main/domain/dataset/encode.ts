// Training records → token ids and labels, with cli.md's semantics ("Data semantics"):
// - text: encode(text) with the tokenizer's own special tokens (e.g. a BOS), then the EOS id
//   appended unless already last; every position is a target.
// - prompt-completion: encode(prompt) with special tokens + encode(completion) without + EOS;
//   the targets are the completion's tokens and the EOS.
// - messages (alpaca, sharegpt and chat CSV columns too): the model's chat template, with targets
//   only in assistant turns (tokenizeConversation decides which).
// Labels follow Hugging Face: labels[t] = ids[t] where t is a target, −100 elsewhere (the engine
// shifts by one when it scores). A record longer than seqLen is cut to seqLen and says so.

import { tokenizeConversation } from '../chat/conversation'
import { ChatError } from '../chat/errors'
import type { ChatTemplate } from '../chat/template'
import type { ModelTokenizer } from '../tokenizer/model-tokenizer'
import type { TrainingRecord } from './types'

/** The label of a position that is not a target (PyTorch's cross-entropy ignore_index). */
export const IGNORE_LABEL = -100

export interface EncodeContext {
  tokenizer: ModelTokenizer
  /** The model's chat template; messages records need it (null for a model without one). */
  template: ChatTemplate | null
  /** The most tokens a training example holds; longer records are truncated. */
  seqLen: number
}

export interface EncodedRecord {
  ids: number[]
  /** ids[t] where position t is a target, IGNORE_LABEL elsewhere; as long as ids. */
  labels: number[]
  /** The record had more than seqLen tokens and was cut. */
  truncated: boolean
  /** Its length before truncation. */
  tokens: number
  /** How many targets survive truncation (0: the record teaches nothing at this seqLen). */
  targets: number
}

/** Why a record can't be encoded for this model (no chat template, one that refuses the conversation…). */
export class EncodeError extends Error {
  constructor(
    message: string,
    /** True when no record of this kind can be encoded for this model (it has no chat template). */
    readonly affectsAll = false,
  ) {
    super(message)
    this.name = 'EncodeError'
  }
}

/** The EOS id appended to text and completions: the tokenizer's eos_token, as transformers' tokenizer.eos_token_id. */
export function appendedEosId(tokenizer: ModelTokenizer): number {
  const named = tokenizer.specialTokens.named.eos_token
  const id = typeof named === 'string' ? tokenizer.specialTokens.ids.get(named) : undefined
  const eos = id ?? tokenizer.eosIds[0]
  if (eos === undefined) throw new EncodeError("the model's tokenizer has no end-of-sequence token (eos_token), so Attune can't mark where an example ends", true)
  return eos
}

export function encodeRecord(record: TrainingRecord, context: EncodeContext): EncodedRecord {
  const { tokenizer } = context
  if (!Number.isInteger(context.seqLen) || context.seqLen < 1) throw new RangeError(`seqLen must be a whole number of at least 1, not ${context.seqLen}`)
  let ids: number[]
  let targets: boolean[]
  switch (record.kind) {
    case 'text': {
      const eos = appendedEosId(tokenizer)
      ids = tokenizer.encode(record.text, { addSpecialTokens: true })
      if (ids[ids.length - 1] !== eos) ids.push(eos)
      targets = ids.map(() => true)
      break
    }
    case 'prompt-completion': {
      const eos = appendedEosId(tokenizer)
      const prompt = tokenizer.encode(record.prompt, { addSpecialTokens: true })
      const completion = tokenizer.encode(record.completion, { addSpecialTokens: false })
      ids = [...prompt, ...completion, eos]
      targets = ids.map((_, index) => index >= prompt.length)
      break
    }
    case 'messages': {
      if (context.template === null) {
        throw new EncodeError(
          "the model has no chat template, so it can't take conversations (messages, alpaca, sharegpt): use an instruct or chat model, or text or prompt-completion data",
          true,
        )
      }
      try {
        ;({ ids, targets } = tokenizeConversation(tokenizer, context.template, record.messages))
      } catch (error) {
        if (error instanceof ChatError) throw new EncodeError(lowerFirst(error.message))
        throw error
      }
      break
    }
  }
  const tokens = ids.length
  const truncated = tokens > context.seqLen
  if (truncated) {
    ids = ids.slice(0, context.seqLen)
    targets = targets.slice(0, context.seqLen)
  }
  let targetCount = 0
  const labels = ids.map((id, index) => {
    if (!targets[index]) return IGNORE_LABEL
    targetCount++
    return id
  })
  return { ids, labels, truncated, tokens, targets: targetCount }
}

function lowerFirst(text: string): string {
  return text.length > 0 ? text[0]!.toLowerCase() + text.slice(1) : text
}
