import { describe, expect, it } from 'vitest'
import { tokenizeConversation } from '../../src-main/domain/chat/conversation'
import { ChatError } from '../../src-main/domain/chat/errors'
import type { ChatMessage } from '../../src-main/domain/chat/messages'
import { parseChatTemplate } from '../../src-main/domain/chat/template'
import { createModelTokenizer, type ModelTokenizer } from '../../src-main/domain/tokenizer/model-tokenizer'

/** GPT-2's byte → character table, the alphabet byte-level BPE vocabularies are written in. */
function byteChars(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)
  let extra = 0
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : 256 + extra++))
}

/** A byte-level BPE (ids 0–255 are the bytes, then `merged` tokens, then the specials). */
function toyTokenizer(specials: string[], named: Record<string, string>, merges: [string, string][] = []): ModelTokenizer {
  const vocab: Record<string, number> = Object.fromEntries(byteChars().map((c, i) => [c, i]))
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length
  const first = Object.keys(vocab).length
  return createModelTokenizer({
    tokenizerPath: 'toy/tokenizer.json',
    tokenizerJson: {
      model: { type: 'BPE', vocab, merges },
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      added_tokens: specials.map((content, i) => ({ id: first + i, content, special: true, normalized: false })),
    },
    tokenizerConfig: named,
  })
}

const chatmlTokenizer = toyTokenizer(['<|endoftext|>', '<|im_start|>', '<|im_end|>'], { eos_token: '<|im_end|>' })
const chatmlTemplate = parseChatTemplate(
  "{%- for message in messages %}{%- if loop.first and message.role != 'system' %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}" +
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}" +
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
  { model: 'toy-chatml', source: 'test' },
)

const llama3Tokenizer = toyTokenizer(['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'], {
  bos_token: '<|begin_of_text|>',
  eos_token: '<|eot_id|>',
})
const llama3Template = parseChatTemplate(
  "{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}" +
    '{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}' +
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
  { model: 'toy-llama3', source: 'test' },
)

const conversation: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Name a colour.' },
  { role: 'assistant', content: 'Blue, café 🙂' },
  { role: 'user', content: 'Another?' },
  { role: 'assistant', content: 'Red.' },
]

/** The text of each run of target ids, and of the ids right after each run. */
function targetRuns(tokenizer: ModelTokenizer, ids: number[], targets: boolean[]): { run: string; next: string }[] {
  const runs: { ids: number[]; end: number }[] = []
  ids.forEach((id, i) => {
    if (!targets[i]) return
    if (i === 0 || !targets[i - 1]) runs.push({ ids: [], end: i })
    runs.at(-1)!.ids.push(id)
    runs.at(-1)!.end = i + 1
  })
  return runs.map((r) => ({ run: tokenizer.decode(r.ids), next: tokenizer.decode(ids.slice(r.end, r.end + 1)) }))
}

function chatError(run: () => unknown): ChatError {
  try {
    run()
  } catch (err) {
    if (err instanceof ChatError) return err
    throw err
  }
  throw new Error('expected a ChatError')
}

describe('tokenizeConversation', () => {
  it("targets ChatML replies and their <|im_end|>, not the newline after it", () => {
    const { ids, targets } = tokenizeConversation(chatmlTokenizer, chatmlTemplate, conversation)
    expect(ids).toEqual(chatmlTokenizer.encode(chatmlTokenizer.decode(ids), { addSpecialTokens: false }))
    expect(targets).toHaveLength(ids.length)
    expect(targetRuns(chatmlTokenizer, ids, targets)).toEqual([
      { run: 'Blue, café 🙂<|im_end|>', next: '\n' },
      { run: 'Red.<|im_end|>', next: '\n' },
    ])
  })

  it('targets Llama 3 replies and their <|eot_id|>, not the BOS or the headers', () => {
    const { ids, targets } = tokenizeConversation(llama3Tokenizer, llama3Template, conversation)
    expect(llama3Tokenizer.decode(ids).startsWith('<|begin_of_text|><|start_header_id|>system')).toBe(true)
    expect(targets[0]).toBe(false)
    expect(targetRuns(llama3Tokenizer, ids, targets)).toEqual([
      { run: 'Blue, café 🙂<|eot_id|>', next: '<|start_header_id|>' },
      { run: 'Red.<|eot_id|>', next: '' },
    ])
  })

  it('has no targets without an assistant turn', () => {
    const { ids, targets } = tokenizeConversation(chatmlTokenizer, chatmlTemplate, conversation.slice(0, 2))
    expect(ids.length).toBeGreaterThan(0)
    expect(targets.every((t) => !t)).toBe(true)
  })

  it('takes a conversation that opens with a reply', () => {
    const chatml = parseChatTemplate(
      "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
      { model: 'toy-smollm2', source: 'test' },
    )
    const { ids, targets } = tokenizeConversation(chatmlTokenizer, chatml, conversation.slice(2))
    expect(targetRuns(chatmlTokenizer, ids, targets)).toEqual([
      { run: 'Blue, café 🙂<|im_end|>', next: '\n' },
      { run: 'Red.<|im_end|>', next: '\n' },
    ])
  })

  it('ends a reply at the first special token after its content, not at one written inside it', () => {
    const messages: ChatMessage[] = [
      { role: 'user', content: 'How do turns end?' },
      { role: 'assistant', content: 'With <|im_end|> here' },
    ]
    const { ids, targets } = tokenizeConversation(chatmlTokenizer, chatmlTemplate, messages)
    expect(targetRuns(chatmlTokenizer, ids, targets)).toEqual([{ run: 'With <|im_end|> here<|im_end|>', next: '\n' }])
  })

  it('targets all a reply turn emits when the template closes it with no special token', () => {
    const plain = parseChatTemplate("{% for m in messages %}{{ m.role + ': ' + m.content + '\\n' }}{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}", {
      model: 'toy-plain',
      source: 'test',
    })
    const { ids, targets } = tokenizeConversation(chatmlTokenizer, plain, conversation.slice(1, 3))
    expect(targetRuns(chatmlTokenizer, ids, targets)).toEqual([{ run: 'Blue, café 🙂\n', next: '' }])
  })

  it("handles Qwen3's template, which renders earlier replies differently once a user speaks after them", () => {
    const qwen3 = parseChatTemplate(
      "{%- set ns = namespace(last_query=-1) %}{%- for m in messages %}{%- if m.role == 'user' %}{%- set ns.last_query = loop.index0 %}{%- endif %}{%- endfor %}" +
        "{%- for m in messages %}{%- if m.role == 'assistant' and loop.index0 > ns.last_query %}{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' + m.content + '<|im_end|>\\n' }}" +
        "{%- else %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}" +
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
      { model: 'toy-qwen3', source: 'test' },
    )
    const { ids, targets } = tokenizeConversation(chatmlTokenizer, qwen3, conversation)
    expect(targetRuns(chatmlTokenizer, ids, targets)).toEqual([
      { run: 'Blue, café 🙂<|im_end|>', next: '\n' },
      { run: '<think>\n\n</think>\n\nRed.<|im_end|>', next: '\n' },
    ])
  })

  it('refuses a template whose rendering of a conversation start is not the start of the whole', () => {
    // Like Mistral v0.3's: the system message goes into the last user turn.
    const lastTurnSystem = parseChatTemplate(
      "{%- for m in messages %}{%- if m.role == 'user' %}{{- '[INST] ' }}{%- if loop.last or loop.index0 == messages|length - 2 %}{{- messages[0].content + '\\n\\n' }}{%- endif %}{{- m.content + '[/INST]' }}" +
        "{%- elif m.role == 'assistant' %}{{- m.content + '<|im_end|>' }}{%- endif %}{%- endfor %}",
      { model: 'toy-mistral', source: 'test' },
    )
    const err = chatError(() => tokenizeConversation(chatmlTokenizer, lastTurnSystem, conversation))
    expect(err.code).toBe('NOT_PREFIX_STABLE')
    expect(err.message).toMatch(/^The chat template of toy-mistral does not render consistently prefix by prefix \(the conversation up to message 3 renders differently on its own\)/)

    const counting = parseChatTemplate("{{ messages | length }} messages\n{% for m in messages %}{{ m.content }}<|im_end|>{% endfor %}", { model: 'toy-count', source: 'test' })
    expect(chatError(() => tokenizeConversation(chatmlTokenizer, counting, conversation)).code).toBe('NOT_PREFIX_STABLE')
  })

  it('refuses a template whose generation prompt ends inside a token', () => {
    // The prompt ends with "Re" and the reply goes on "ply…": the merged token "ep" straddles the cut.
    const tokenizer = toyTokenizer(['<|im_end|>'], {}, [['e', 'p']])
    const template = parseChatTemplate("{% for m in messages %}{% if m.role == 'assistant' %}Re{% endif %}{{ m.content }}<|im_end|>{% endfor %}{% if add_generation_prompt %}Re{% endif %}", {
      model: 'toy-split',
      source: 'test',
    })
    const err = chatError(() => tokenizeConversation(tokenizer, template, [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'ply' }]))
    expect(err.code).toBe('NOT_PREFIX_STABLE')
    expect(err.message).toMatch(/does not render consistently prefix by prefix \(a token straddles character \d+ of the rendered text\)/)
  })

  it('checks the messages', () => {
    const err = chatError(() => tokenizeConversation(chatmlTokenizer, chatmlTemplate, [{ role: 'tool', content: '42' }] as unknown as ChatMessage[]))
    expect(err.code).toBe('INVALID_MESSAGES')
  })
})
