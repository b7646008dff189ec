// encodeRecord (cli.md, "Data semantics") against the golden model folders
// (test/golden/fixtures/<name>/, written by test/golden/make_golden.py): real tokenizers and chat
// templates, with the token ids transformers produced for the same texts as the reference.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { endOfTurnToken } from '../../src-main/domain/chat/end-of-turn'
import { findChatTemplate } from '../../src-main/domain/chat/template'
import { EncodeError, IGNORE_LABEL, appendedEosId, encodeRecord, type EncodeContext } from '../../src-main/domain/dataset/encode'
import { alpacaMessages } from '../../src-main/domain/dataset/formats'
import { loadTokenizer } from '../../src-main/domain/tokenizer/load'

interface Reference {
  meta: { eos_token_ids: number[]; bos_token_id: number | null; add_bos: boolean }
  tokenization: Array<{ text: string; ids: number[]; ids_plain: number[] }>
  chat: Array<{ messages: Array<{ role: 'system' | 'user' | 'assistant'; content: string }>; add_generation_prompt: boolean; ids: number[] }>
}

const fixturesDir = join(import.meta.dirname, '..', 'golden', 'fixtures')
const names = ['llama', 'llama_tied', 'mistral', 'qwen2', 'qwen3']
const missing = names.filter((name) => !existsSync(join(fixturesDir, name, 'tokenizer.json')))

it('finds the golden model folders', () => {
  expect(missing, `golden fixtures missing in ${fixturesDir}: regenerate them with \`bash scripts/python-env.sh && .venv/bin/python test/golden/make_golden.py\``).toEqual([])
})

describe.each(names.filter((name) => !missing.includes(name)))('%s', (name) => {
  const dir = join(fixturesDir, name)
  const reference = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as Reference
  const tokenizer = loadTokenizer(dir)
  const template = findChatTemplate(dir)
  const context: EncodeContext = { tokenizer, template, seqLen: 4096 }
  const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as { eos_token: string }
  const eos = tokenizer.specialTokens.ids.get(config.eos_token)!
  const hello = reference.tokenization[0]! // "Hello world! This is a test."
  const cafe = reference.tokenization[3]! // "café naïve résumé déjà vu"

  it("appends the tokenizer's eos_token", () => {
    expect(eos).toBeTypeOf('number')
    expect(appendedEosId(tokenizer)).toBe(eos)
    expect(reference.meta.eos_token_ids).toContain(eos)
  })

  it('text: the ids with special tokens, then EOS; every position a target', () => {
    const encoded = encodeRecord({ kind: 'text', text: hello.text }, context)
    expect(encoded.ids).toEqual([...hello.ids, eos])
    expect(encoded.labels).toEqual(encoded.ids)
    expect(encoded).toMatchObject({ truncated: false, tokens: hello.ids.length + 1, targets: hello.ids.length + 1 })
    if (reference.meta.add_bos) expect(encoded.ids[0]).toBe(reference.meta.bos_token_id)
  })

  it('text: no second EOS when the text already ends with it', () => {
    const encoded = encodeRecord({ kind: 'text', text: `${hello.text}${config.eos_token}` }, context)
    expect(encoded.ids.at(-1)).toBe(eos)
    expect(encoded.ids.at(-2)).not.toBe(eos)
    expect(encoded.ids).toEqual([...hello.ids, eos])
  })

  it('prompt-completion: prompt with special tokens, completion without, EOS; targets the completion and EOS', () => {
    const encoded = encodeRecord({ kind: 'prompt-completion', prompt: hello.text, completion: cafe.text }, context)
    expect(encoded.ids).toEqual([...hello.ids, ...cafe.ids_plain, eos])
    expect(encoded.labels).toEqual([...hello.ids.map(() => IGNORE_LABEL), ...cafe.ids_plain, eos])
    expect(encoded.targets).toBe(cafe.ids_plain.length + 1)
  })

  it("messages: the template's ids; targets only the assistant's reply and its end-of-turn token", () => {
    const conversation = reference.chat.find((c) => !c.add_generation_prompt)!
    const encoded = encodeRecord({ kind: 'messages', messages: conversation.messages }, context)
    expect(encoded.ids).toEqual(conversation.ids)
    const targeted = encoded.ids.filter((_, i) => encoded.labels[i] !== IGNORE_LABEL)
    const endOfTurn = endOfTurnToken(template!, tokenizer.specialTokens)!
    expect(tokenizer.decode(targeted)).toBe(`${conversation.messages.at(-1)!.content}${endOfTurn}`)
    encoded.labels.forEach((label, i) => expect(label === IGNORE_LABEL || label === encoded.ids[i]).toBe(true))
  })

  it('alpaca records encode as the conversation they stand for', () => {
    const messages = alpacaMessages('Translate to French.', 'Good morning', 'Bonjour')
    expect(messages).toEqual([
      { role: 'user', content: 'Translate to French.\n\nGood morning' },
      { role: 'assistant', content: 'Bonjour' },
    ])
    const encoded = encodeRecord({ kind: 'messages', messages }, context)
    const targeted = encoded.ids.filter((_, i) => encoded.labels[i] !== IGNORE_LABEL)
    expect(tokenizer.decode(targeted)).toBe(`Bonjour${endOfTurnToken(template!, tokenizer.specialTokens)}`)
  })

  it('truncates at seqLen and counts what is left', () => {
    const full = encodeRecord({ kind: 'prompt-completion', prompt: hello.text, completion: cafe.text }, context)
    const exact = encodeRecord({ kind: 'prompt-completion', prompt: hello.text, completion: cafe.text }, { ...context, seqLen: full.ids.length })
    expect(exact).toEqual(full)
    const cut = encodeRecord({ kind: 'prompt-completion', prompt: hello.text, completion: cafe.text }, { ...context, seqLen: hello.ids.length + 2 })
    expect(cut).toEqual({ ids: full.ids.slice(0, hello.ids.length + 2), labels: full.labels.slice(0, hello.ids.length + 2), truncated: true, tokens: full.ids.length, targets: 2 })
    const nothing = encodeRecord({ kind: 'prompt-completion', prompt: hello.text, completion: cafe.text }, { ...context, seqLen: 3 })
    expect(nothing).toMatchObject({ truncated: true, targets: 0 })
    expect(nothing.ids).toHaveLength(3)
  })
})

describe('errors', () => {
  const dir = join(fixturesDir, 'mistral')
  const ready = existsSync(join(dir, 'tokenizer.json'))

  it.runIf(ready)('a conversation needs a chat template; without one every record fails the same way', () => {
    const tokenizer = loadTokenizer(dir)
    const run = () => encodeRecord({ kind: 'messages', messages: alpacaMessages('a', undefined, 'b') }, { tokenizer, template: null, seqLen: 64 })
    expect(run).toThrow(EncodeError)
    expect(run).toThrow(/has no chat template/)
    try {
      run()
    } catch (error) {
      expect((error as EncodeError).affectsAll).toBe(true)
    }
  })

  it.runIf(ready)("the template's own refusal is an error for that record", () => {
    const tokenizer = loadTokenizer(dir)
    const template = findChatTemplate(dir)
    const messages = [
      { role: 'user' as const, content: 'one' },
      { role: 'user' as const, content: 'two' },
      { role: 'assistant' as const, content: 'three' },
    ]
    let caught: unknown
    try {
      encodeRecord({ kind: 'messages', messages }, { tokenizer, template, seqLen: 64 })
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(EncodeError)
    expect((caught as EncodeError).affectsAll).toBe(false)
    expect((caught as EncodeError).message).toMatch(/^the chat template of mistral could not render these messages: .*alternate/)
  })

  it.runIf(ready)('refuses a seqLen that is not a positive whole number', () => {
    const tokenizer = loadTokenizer(dir)
    expect(() => encodeRecord({ kind: 'text', text: 'a' }, { tokenizer, template: null, seqLen: 0 })).toThrow(RangeError)
  })
})
