import { Tokenizer } from '@huggingface/tokenizers'
import { endOfTurnToken } from '../chat/end-of-turn'
import type { ChatTemplate } from '../chat/template'
import { cleanUpTokenizationSpaces } from './cleanup'
import { messageOf, TokenizerFileError } from './errors'
import { namedSpecialTokens, type IdsConfig, type TokenizerConfig, type TokenizerJson } from './model-files'
import { createStreamDecoder, type StreamDecoder } from './stream-decoder'

export interface EncodeOptions {
  /** true: the tokenizer's own post-processor adds its special tokens (e.g. Llama's BOS). */
  addSpecialTokens: boolean
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean
}

export interface SpecialTokens {
  /**
   * tokenizer_config.json's bos_token, eos_token, unk_token, pad_token, … (those set) and
   * additional_special_tokens: the variables transformers hands a chat template, by those names.
   */
  readonly named: Readonly<Record<string, string | readonly string[]>>
  /** Every added token tokenizer.json marks special, content → id. */
  readonly ids: ReadonlyMap<string, number>
}

/** A model's tokenizer, as transformers' fast tokenizer for the same files would behave. */
export interface ModelTokenizer {
  encode(text: string, options: EncodeOptions): number[]
  /** Ids the tokenizer does not know are left out, as the Rust tokenizers library does. */
  decode(ids: readonly number[], options?: DecodeOptions): string
  createStreamDecoder(options?: DecodeOptions): StreamDecoder
  /** The tokenizer's BOS (tokenizer_config.json's bos_token); null when it has none (Qwen). */
  readonly bosId: number | null
  /** Every id that ends a sequence: generation_config.json's eos_token_id ∪ config.json's ∪ the tokenizer's eos_token. */
  readonly eosIds: readonly number[]
  /** Ids that end a chat reply: eosIds and the chat template's end-of-turn token when it is special (<|im_end|>, <|eot_id|>). */
  readonly stopIds: readonly number[]
  readonly specialTokens: SpecialTokens
  /** One more than the highest id the tokenizer can produce, added tokens included. */
  readonly vocabSize: number
}

/** What a ModelTokenizer is made from: a model folder's files, already read and checked. */
export interface TokenizerSources {
  /** tokenizer.json's path, for messages. */
  readonly tokenizerPath: string
  readonly tokenizerJson: TokenizerJson
  readonly tokenizerConfig?: TokenizerConfig
  readonly generationConfig?: IdsConfig
  readonly config?: IdsConfig
  /** The model's chat template, for its end-of-turn token. */
  readonly chatTemplate?: ChatTemplate | null
}

export function createModelTokenizer(sources: TokenizerSources): ModelTokenizer {
  const { tokenizerConfig = {} } = sources
  const named = namedTokens(tokenizerConfig)
  const tokenizer = libraryTokenizer(sources, named)
  const specialIds = new Map(sources.tokenizerJson.added_tokens?.filter((t) => t.special).map((t) => [t.content, t.id]))
  const idOf = (token: string | null | undefined) => (token == null ? undefined : tokenizer.token_to_id(token))
  const cleanUp = tokenizerConfig.clean_up_tokenization_spaces ?? false

  // Rust's tokenizers skips ids it has no token for; the JS library would decode them as
  // `undefined` (and refuses an empty list).
  function decodeRaw(ids: readonly number[], skipSpecialTokens: boolean): string {
    const known = ids.filter((id) => tokenizer.id_to_token(id) !== undefined)
    if (known.length === 0) return ''
    return tokenizer.decode(known, { skip_special_tokens: skipSpecialTokens, clean_up_tokenization_spaces: false })
  }

  const eosIds = unique([...(sources.generationConfig?.eos_token_id ?? []), ...(sources.config?.eos_token_id ?? []), idOf(tokenizerConfig.eos_token)])
  const endOfTurn = sources.chatTemplate ? endOfTurnToken(sources.chatTemplate, { named, ids: specialIds }) : null

  return {
    encode: (text, { addSpecialTokens }) => tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids,
    decode(ids, options = {}) {
      const text = decodeRaw(ids, options.skipSpecialTokens ?? false)
      return cleanUp ? cleanUpTokenizationSpaces(text) : text
    },
    createStreamDecoder: (options = {}) => createStreamDecoder((ids) => decodeRaw(ids, options.skipSpecialTokens ?? false), cleanUp),
    bosId: idOf(tokenizerConfig.bos_token) ?? null,
    eosIds,
    stopIds: unique([...eosIds, endOfTurn === null ? undefined : specialIds.get(endOfTurn)]),
    specialTokens: { named, ids: specialIds },
    vocabSize: highestId(tokenizer) + 1,
  }
}

function namedTokens(config: TokenizerConfig): Record<string, string | readonly string[]> {
  const named: Record<string, string | readonly string[]> = {}
  for (const name of namedSpecialTokens) {
    const token = config[name]
    if (token != null) named[name] = token
  }
  if (config.additional_special_tokens) named.additional_special_tokens = config.additional_special_tokens
  return named
}

function libraryTokenizer(sources: TokenizerSources, named: Record<string, string | readonly string[]>): Tokenizer {
  // The library insists on these keys, which tokenizer.json files written by older versions
  // of the tokenizers library may leave out.
  const json = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...sources.tokenizerJson }
  // Only the special tokens' names go to the library: it would also apply the config's
  // slow-tokenizer options (remove_space, lowercasing), which transformers' fast tokenizer
  // ignores, and it would skip additional_special_tokens when decoding, which Rust does not.
  const { additional_special_tokens: _additional, ...config } = named
  try {
    return new Tokenizer(json, config)
  } catch (err) {
    const path = sources.tokenizerPath
    throw new TokenizerFileError(
      path,
      `${path} uses something Attune's tokenizer (@huggingface/tokenizers) cannot run (${messageOf(err)}). This model's tokenizer is not supported yet.`,
      { cause: err },
    )
  }
}

function highestId(tokenizer: Tokenizer): number {
  let highest = -1
  for (const id of tokenizer.get_vocab(true).values()) highest = Math.max(highest, id)
  return highest
}

function unique(ids: readonly (number | undefined)[]): number[] {
  return [...new Set(ids.filter((id): id is number => id !== undefined))]
}
