import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ChatError } from '../../src-main/domain/chat/errors'
import { validateMessages } from '../../src-main/domain/chat/messages'
import { renderChat } from '../../src-main/domain/chat/render'
import { findChatTemplate, loadChatTemplate, parseChatTemplate } from '../../src-main/domain/chat/template'

function chatError(run: () => unknown): ChatError {
  try {
    run()
  } catch (err) {
    if (err instanceof ChatError) return err
    throw err
  }
  throw new Error('expected a ChatError')
}

describe('loadChatTemplate', () => {
  const root = mkdtempSync(join(tmpdir(), 'attune-chat-'))
  afterAll(() => rmSync(root, { recursive: true, force: true }))
  let count = 0
  function modelDir(files: Record<string, unknown>): string {
    const dir = join(root, `model-${++count}`)
    mkdirSync(dir)
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content))
    return dir
  }

  it('prefers chat_template.jinja over tokenizer_config.json', () => {
    const dir = modelDir({ 'chat_template.jinja': 'from the file', 'tokenizer_config.json': { chat_template: 'from the config' } })
    const template = loadChatTemplate(dir)
    expect(template.text).toBe('from the file')
    expect(template.source).toBe(join(dir, 'chat_template.jinja'))
  })

  it("takes tokenizer_config.json's chat_template, or the one named default from a list", () => {
    expect(loadChatTemplate(modelDir({ 'tokenizer_config.json': { chat_template: 'plain' } })).text).toBe('plain')
    const listed = modelDir({
      'tokenizer_config.json': {
        chat_template: [
          { name: 'tool_use', template: 'tools' },
          { name: 'default', template: 'the default' },
        ],
      },
    })
    expect(loadChatTemplate(listed).text).toBe('the default')
  })

  it('says so when a list has no default', () => {
    const dir = modelDir({ 'tokenizer_config.json': { chat_template: [{ name: 'tool_use', template: 'tools' }] } })
    const err = chatError(() => loadChatTemplate(dir))
    expect(err.code).toBe('TEMPLATE_INVALID')
    expect(err.message).toMatch(/named "tool_use" but none named "default"/)
  })

  it('finds none in a base model, which loadChatTemplate refuses', () => {
    const dir = modelDir({ 'tokenizer_config.json': { eos_token: '</s>' } })
    expect(findChatTemplate(dir)).toBeNull()
    expect(findChatTemplate(modelDir({}))).toBeNull()
    const err = chatError(() => loadChatTemplate(dir))
    expect(err.code).toBe('NO_TEMPLATE')
    expect(err.message).toMatch(/has no chat template/)
  })

  it('names the file whose template does not parse', () => {
    const dir = modelDir({ 'chat_template.jinja': '{% for m in messages %}{{ m.content }' })
    const err = chatError(() => loadChatTemplate(dir))
    expect(err.code).toBe('TEMPLATE_INVALID')
    expect(err.message).toContain(join(dir, 'chat_template.jinja'))
  })
})

describe('renderChat', () => {
  const origin = { model: 'toy', source: 'test' }

  it('passes the variables transformers passes', () => {
    const template = parseChatTemplate(
      "{{ bos_token }}|{{ eos_token }}|{{ pad_token }}|{{ additional_special_tokens | join(',') }}|{{ tools is none }}|{{ documents is none }}|{{ add_generation_prompt }}|{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}",
      origin,
    )
    const specialTokens = { bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>', additional_special_tokens: ['<a>', '<b>'] }
    expect(renderChat(template, [{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true, specialTokens })).toBe(
      '<s>|</s>|<pad>|<a>,<b>|true|true|true|user:Hi;',
    )
  })

  it("reports the template's own exceptions", () => {
    const template = parseChatTemplate("{{ raise_exception('Conversation roles must alternate user/assistant') }}", origin)
    const err = chatError(() => renderChat(template, [{ role: 'user', content: 'Hi' }], { addGenerationPrompt: false }))
    expect(err.code).toBe('TEMPLATE_FAILED')
    expect(err.message).toBe('The chat template of toy could not render these messages: Conversation roles must alternate user/assistant')
  })
})

describe('validateMessages', () => {
  it('keeps role and content only', () => {
    expect(validateMessages([{ role: 'system', content: 'Be brief.', name: 'x' }, { role: 'user', content: '' }])).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: '' },
    ])
  })

  it.each([
    [[], /non-empty list/, undefined],
    ['hello', /non-empty list/, undefined],
    [[{ role: 'user', content: 'Hi' }, 'Hi'], /^message 2 is not an object/, 1],
    [[{ content: 'Hi' }], /^message 1 has no role \(roles: system, user, assistant\)/, 0],
    [[{ role: 'bot', content: 'Hi' }], /^message 1 has role "bot" \(roles: system, user, assistant\)/, 0],
    [[{ role: 'tool', content: '42' }], /^message 1 has role "tool": tool calls and results are not supported yet/, 0],
    [[{ role: 'user' }], /^message 1 has no text content/, 0],
    [[{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }], /^message 1 has a list as content/, 0],
  ])('refuses %j', (messages, message, index) => {
    const err = chatError(() => validateMessages(messages))
    expect(err.code).toBe('INVALID_MESSAGES')
    expect(err.message).toMatch(message)
    expect(err.messageIndex).toBe(index)
  })
})
