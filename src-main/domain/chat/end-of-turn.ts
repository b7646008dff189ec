import type { SpecialTokens } from '../tokenizer/model-tokenizer'
import { ChatError } from './errors'
import { renderChat } from './render'
import type { ChatTemplate } from './template'

/** The special token that starts earliest in `text` (the longest of those starting there). */
export function firstSpecialToken(text: string, specials: Iterable<string>): { token: string; index: number } | null {
  let first: { token: string; index: number } | null = null
  for (const token of specials) {
    const index = text.indexOf(token)
    if (index < 0) continue
    if (!first || index < first.index || (index === first.index && token.length > first.token.length)) first = { token, index }
  }
  return first
}

const probeReply = 'Attune probe reply'

/**
 * The special token the template closes an assistant turn with (<|im_end|>, <|eot_id|>, </s>),
 * found by rendering a one-exchange conversation; null when it emits none. A template that
 * cannot render that exchange gives null too: rendering a real conversation will say why.
 */
export function endOfTurnToken(template: ChatTemplate, specialTokens: SpecialTokens): string | null {
  let rendered: string
  try {
    rendered = renderChat(
      template,
      [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: probeReply },
      ],
      { addGenerationPrompt: false, specialTokens: specialTokens.named },
    )
  } catch (err) {
    if (err instanceof ChatError) return null
    throw err
  }
  const at = rendered.lastIndexOf(probeReply)
  if (at < 0) return null
  return firstSpecialToken(rendered.slice(at + probeReply.length), specialTokens.ids.keys())?.token ?? null
}
