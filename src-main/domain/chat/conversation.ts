import type { ModelTokenizer } from '../tokenizer/model-tokenizer'
import { firstSpecialToken } from './end-of-turn'
import { ChatError } from './errors'
import { validateMessages, type ChatMessage } from './messages'
import { renderChat } from './render'
import type { ChatTemplate } from './template'

export interface TokenizedConversation {
  ids: number[]
  /** Per id: whether training predicts it (the assistant's replies and their end-of-turn token). */
  targets: boolean[]
}

/**
 * The ids of a rendered conversation and which of them are targets: in each assistant turn, the
 * text after the generation prompt (the reply and any markup the template puts before it) up to
 * and including the first special token after the reply; nothing else (cli.md, "messages").
 *
 * The jinja library gives no spans, so the turns are found by rendering: the conversation up to
 * each assistant message, with the generation prompt, must be the start of the whole rendering,
 * which is what the model is then trained on as its prompt. The text is tokenized piece by
 * piece and checked against tokenizing it whole, which proves no token straddles a boundary.
 */
export function tokenizeConversation(tokenizer: ModelTokenizer, template: ChatTemplate, messages: readonly ChatMessage[]): TokenizedConversation {
  const checked = validateMessages(messages)
  const specials = tokenizer.specialTokens
  const render = (count: number, addGenerationPrompt: boolean) => renderChat(template, checked.slice(0, count), { addGenerationPrompt, specialTokens: specials.named })
  const inconsistent = (detail: string) =>
    new ChatError(
      'NOT_PREFIX_STABLE',
      `The chat template of ${template.model} does not render consistently prefix by prefix (${detail}), so Attune cannot tell which tokens are the assistant's.`,
    )

  const whole = render(checked.length, false)
  // Boundaries in `whole` of its pieces, alternately prompt text and target text.
  const cuts = [0]
  checked.forEach((message, index) => {
    if (message.role !== 'assistant') return
    const prompt = render(index, true)
    if (!whole.startsWith(prompt) || prompt.length < cuts.at(-1)!) {
      throw inconsistent(`the conversation up to message ${index + 1} renders differently on its own`)
    }
    cuts.push(prompt.length, prompt.length + replyLength(whole.slice(prompt.length), message.content, specials.ids.keys()))
  })
  cuts.push(whole.length)

  const ids: number[] = []
  const targets: boolean[] = []
  const anchors = specialTokenStarts(whole, specials.ids.keys())
  for (let i = 0; i + 1 < cuts.length; i++) {
    const [from, to] = [cuts[i]!, cuts[i + 1]!]
    // Tokenizers work on the stretches between added tokens one by one, but treat the first
    // stretch of a text specially (Metaspace adds a "▁" to it): so each piece is tokenized from
    // the special token before it, as it sits in the whole text, and the ids up to the piece
    // are taken off. A piece of Mistral's "[/INST]The answer" tokenized alone would get "▁The".
    const anchor = anchors.findLast((start) => start <= from) ?? 0
    const before = tokenizer.encode(whole.slice(anchor, from), { addSpecialTokens: false })
    const upTo = tokenizer.encode(whole.slice(anchor, to), { addSpecialTokens: false })
    if (before.some((id, k) => upTo[k] !== id)) throw inconsistent(`a token straddles character ${from} of the rendered text`)
    const pieceIds = upTo.slice(before.length)
    ids.push(...pieceIds)
    targets.push(...pieceIds.map(() => i % 2 === 1))
  }

  const wholeIds = tokenizer.encode(whole, { addSpecialTokens: false })
  const differsAt = wholeIds.findIndex((id, k) => id !== ids[k])
  if (differsAt >= 0 || wholeIds.length !== ids.length) {
    throw inconsistent(`its pieces tokenize differently from the whole text, from token ${differsAt >= 0 ? differsAt : Math.min(ids.length, wholeIds.length)}`)
  }
  return { ids, targets }
}

/**
 * How much of `turn` (the text after the generation prompt) is the reply's target: up to and
 * including the first special token after the reply's text, all of it if there is none. Looking
 * after the reply's text keeps a special token written inside the reply from ending it early.
 */
function replyLength(turn: string, content: string, specials: Iterable<string>): number {
  const text = content.trim() // templates often trim it
  const at = turn.indexOf(text)
  const from = at < 0 ? 0 : at + text.length
  const special = firstSpecialToken(turn.slice(from), specials)
  return special ? from + special.index + special.token.length : turn.length
}

/** Where special tokens start in `text`, in order: places where tokenization starts afresh. */
function specialTokenStarts(text: string, specials: Iterable<string>): number[] {
  const starts: number[] = []
  for (const token of specials) {
    for (let at = text.indexOf(token); at >= 0; at = text.indexOf(token, at + token.length)) starts.push(at)
  }
  return starts.sort((a, b) => a - b)
}
