// Chat templates and assistant masks against transformers' apply_chat_template on the golden
// fixtures (test/golden/fixtures/<name>/reference.json, written by test/golden/make_golden.py).
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { goldenDir, goldenFixtures, goldenReference, itFindsTheGoldenFixtures } from './support/golden'
import { tokenizeConversation } from '../../src-main/domain/chat/conversation'
import { endOfTurnToken } from '../../src-main/domain/chat/end-of-turn'
import type { ChatMessage } from '../../src-main/domain/chat/messages'
import { renderChat } from '../../src-main/domain/chat/render'
import { loadChatTemplate } from '../../src-main/domain/chat/template'
import { loadTokenizer } from '../../src-main/domain/tokenizer/load'

interface ChatCase {
  messages: ChatMessage[]
  add_generation_prompt: boolean
  rendered: string
  ids: number[]
}
interface Reference {
  meta: { chat_template_source: string }
  chat: ChatCase[]
}

itFindsTheGoldenFixtures()

describe.each(goldenFixtures)('%s', (name) => {
  const dir = join(goldenDir, name)
  const reference = goldenReference<Reference>(name)
  const tokenizer = loadTokenizer(dir)
  const template = loadChatTemplate(dir)
  const cases = reference.chat.map((c, i) => [i + 1, c] as const)

  it('takes the template transformers takes', () => {
    expect(template.source).toBe(join(dir, reference.meta.chat_template_source))
  })

  it.each(cases)('renders and tokenizes conversation %i', (_, c) => {
    const rendered = renderChat(template, c.messages, { addGenerationPrompt: c.add_generation_prompt, specialTokens: tokenizer.specialTokens.named })
    expect(rendered).toBe(c.rendered)
    expect(tokenizer.encode(rendered, { addSpecialTokens: false })).toEqual(c.ids)
  })

  it.each(cases)('masks conversation %i: targets are the replies and their end-of-turn token', (_, c) => {
    const { ids, targets } = tokenizeConversation(tokenizer, template, c.messages)
    const whole = renderChat(template, c.messages, { addGenerationPrompt: false, specialTokens: tokenizer.specialTokens.named })
    expect(ids).toEqual(tokenizer.encode(whole, { addSpecialTokens: false }))
    if (!c.add_generation_prompt) expect(ids).toEqual(c.ids)

    const endOfTurn = endOfTurnToken(template, tokenizer.specialTokens)
    expect(endOfTurn).not.toBeNull()
    expect(tokenizer.stopIds).toContain(tokenizer.specialTokens.ids.get(endOfTurn!))
    const replies = c.messages.filter((m) => m.role === 'assistant').map((m) => m.content + endOfTurn)
    expect(targetRuns(ids, targets).map((run) => tokenizer.decode(run))).toEqual(replies)
  })
})

/** The target ids, one list per uninterrupted run. */
function targetRuns(ids: number[], targets: boolean[]): number[][] {
  const runs: number[][] = []
  ids.forEach((id, i) => {
    if (!targets[i]) return
    if (i === 0 || !targets[i - 1]) runs.push([])
    runs[runs.length - 1]!.push(id)
  })
  return runs
}
