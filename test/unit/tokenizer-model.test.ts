import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cleanUpTokenizationSpaces, createCleanupStream } from '../../src-main/domain/tokenizer/cleanup'
import { TokenizerFileError } from '../../src-main/domain/tokenizer/errors'
import { loadTokenizer } from '../../src-main/domain/tokenizer/load'
import { createModelTokenizer, type ModelTokenizer } from '../../src-main/domain/tokenizer/model-tokenizer'
import type { TokenizerJson } from '../../src-main/domain/tokenizer/model-files'

/** GPT-2's byte → character table, the alphabet byte-level BPE vocabularies are written in. */
function byteChars(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)
  let extra = 0
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : 256 + extra++))
}

/** A byte-level BPE with no merges: every byte is a token (ids 0–255), so characters split across ids. */
function byteLevelJson(specials: string[], bos?: string): TokenizerJson {
  return {
    model: { type: 'BPE', vocab: Object.fromEntries(byteChars().map((c, i) => [c, i])), merges: [] },
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: bos
      ? { type: 'TemplateProcessing', single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [], special_tokens: {} }
      : null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    added_tokens: specials.map((content, i) => ({ id: 256 + i, content, special: true, normalized: false })),
  }
}

/** Llama 2 / Mistral style: "▁" for spaces, <0xNN> byte-fallback tokens, a decoder that strips the leading space. */
function sentencePieceJson(): TokenizerJson {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 }
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b
  for (const piece of ['▁', 'H', 'i', '▁H', '▁Hi']) vocab[piece] = Object.keys(vocab).length
  return {
    model: { type: 'BPE', vocab, merges: [['▁', 'H'], ['▁H', 'i']], unk_token: '<unk>', byte_fallback: true, fuse_unk: true },
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, special: true, normalized: false })),
  }
}

function streamed(tokenizer: ModelTokenizer, ids: number[], skipSpecialTokens = false): string[] {
  const stream = tokenizer.createStreamDecoder({ skipSpecialTokens })
  return [...ids.map((id) => stream.push(id)), stream.flush()]
}

describe('stream decoder', () => {
  const tokenizer = createModelTokenizer({ tokenizerPath: 'toy/tokenizer.json', tokenizerJson: byteLevelJson(['<|im_end|>']) })

  it.each(['emoji 🙂🚀 and 👍🏽', '中文字符 and 日本語のテキスト', 'café naïve'])('never emits half a character of %s', (text) => {
    const ids = tokenizer.encode(text, { addSpecialTokens: false })
    expect(ids.length).toBe(Buffer.byteLength(text))
    const pieces = streamed(tokenizer, ids)
    expect(pieces.join('')).toBe(tokenizer.decode(ids))
    expect(pieces.join('')).toBe(text)
    for (const piece of pieces) expect(piece).not.toContain('\uFFFD')
    // 🙂 is four ids: the first three add nothing, the fourth the whole character.
    if (text.startsWith('emoji')) expect(pieces.slice(6, 10)).toEqual(['', '', '', '🙂'])
  })

  it('holds a character the ids leave incomplete until flush, then gives what decode gives', () => {
    const ids = tokenizer.encode('ok 🙂', { addSpecialTokens: false }).slice(0, -1)
    const pieces = streamed(tokenizer, ids)
    expect(pieces.slice(0, -1).join('')).toBe('ok ')
    expect(pieces.join('')).toBe(tokenizer.decode(ids))
    expect(pieces.at(-1)).toContain('\uFFFD')
  })

  it('streams special tokens, or skips them', () => {
    const ids = [...tokenizer.encode('Hi', { addSpecialTokens: false }), 256, ...tokenizer.encode(' 🙂', { addSpecialTokens: false })]
    expect(streamed(tokenizer, ids).join('')).toBe('Hi<|im_end|> 🙂')
    expect(streamed(tokenizer, ids, true).join('')).toBe('Hi 🙂')
  })

  it('keeps the spaces a sentencepiece decoder strips only at the start of the text', () => {
    const sp = createModelTokenizer({ tokenizerPath: 'toy/tokenizer.json', tokenizerJson: sentencePieceJson() })
    const ids = sp.encode('Hi Hi 🙂 Hi', { addSpecialTokens: false })
    expect(sp.decode(ids)).toBe('Hi Hi 🙂 Hi')
    expect(streamed(sp, ids).join('')).toBe('Hi Hi 🙂 Hi')
    // A skipped special token between words must not make the next word lose its space.
    const withEos = [...sp.encode('Hi', { addSpecialTokens: false }), 2, ...sp.encode(' Hi', { addSpecialTokens: false })]
    expect(streamed(sp, withEos, true).join('')).toBe(sp.decode(withEos, { skipSpecialTokens: true }))
  })

  it('leaves out ids the tokenizer does not know, and decodes nothing to ""', () => {
    expect(tokenizer.decode([72, 9999, 105])).toBe('Hi')
    expect(tokenizer.decode([])).toBe('')
    expect(streamed(tokenizer, [9999])).toEqual(['', ''])
  })
})

describe('clean_up_tokenization_spaces', () => {
  it('applies transformers replacements in order', () => {
    expect(cleanUpTokenizationSpaces("Hello , world . Is n't it ? I 'm sure ! a ' b")).toBe("Hello, world. Isn't it? I'm sure! a'b")
  })

  it.each([
    ['Hello world .', ['Hello', ' world', ' ', '.']],
    ["It is n't", ['It is', ' n', "'t"]],
    ["a n ' t b", ['a', ' n', ' ', "'", ' t', ' b']],
    ["x  ' m y", ['x', ' ', " '", ' m', ' y']],
    ["x  ' ve", ['x', ' ', " '", ' v', 'e']],
    ["a ' . b", ['a ', "'", ' ', '.', ' b']],
  ])('streams %j in any pieces as it cleans the whole', (text, pieces) => {
    expect(pieces.join('')).toBe(text)
    const stream = createCleanupStream()
    const out = [...pieces.map((p) => stream.push(p)), stream.flush()]
    expect(out.join('')).toBe(cleanUpTokenizationSpaces(text))
    // And one character at a time.
    const byChar = createCleanupStream()
    expect([...[...text].map((c) => byChar.push(c)), byChar.flush()].join('')).toBe(cleanUpTokenizationSpaces(text))
  })

  // The narrow alphabet makes the rare chains (" ' " closing up "  ' ve" into " 've") common.
  it.each(["  'vnte", " 'nmsvre.?!,xa"])('streams random texts over %j exactly, whatever the pieces', (alphabet) => {
    let state = 0x9e3779b9 // xorshift32: a fixed, well-mixed sequence
    const random = (n: number) => {
      state ^= state << 13
      state ^= state >>> 17
      state ^= state << 5
      return Math.floor(((state >>> 0) / 2 ** 32) * n)
    }
    for (let round = 0; round < 30000; round++) {
      const text = Array.from({ length: random(16) }, () => alphabet[random(alphabet.length)]).join('')
      const stream = createCleanupStream()
      let out = ''
      for (let at = 0; at < text.length; ) {
        const next = at + 1 + random(3)
        out += stream.push(text.slice(at, next))
        at = next
      }
      expect(out + stream.flush(), JSON.stringify(text)).toBe(cleanUpTokenizationSpaces(text))
    }
  })

  it('is used by decode and the stream when tokenizer_config.json asks for it', () => {
    const tokenizer = createModelTokenizer({
      tokenizerPath: 'toy/tokenizer.json',
      tokenizerJson: byteLevelJson([]),
      tokenizerConfig: { clean_up_tokenization_spaces: true },
    })
    const ids = tokenizer.encode("Well , it is n't done .", { addSpecialTokens: false })
    expect(tokenizer.decode(ids)).toBe("Well, it isn't done.")
    expect(streamed(tokenizer, ids).join('')).toBe("Well, it isn't done.")
  })
})

describe('loadTokenizer', () => {
  const root = mkdtempSync(join(tmpdir(), 'attune-tokenizer-'))
  afterAll(() => rmSync(root, { recursive: true, force: true }))
  let count = 0
  function modelDir(files: Record<string, unknown>): string {
    const dir = join(root, `model-${++count}`)
    mkdirSync(dir)
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content))
    return dir
  }
  const chatml = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"

  it('collects every EOS id: generation_config (int or list) ∪ config ∪ the tokenizer eos_token', () => {
    const dir = modelDir({
      'tokenizer.json': byteLevelJson(['<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>', '<|im_end|>'], '<|begin_of_text|>'),
      'tokenizer_config.json': { bos_token: '<|begin_of_text|>', eos_token: { content: '<|im_end|>', special: true } },
      'generation_config.json': { eos_token_id: [257, 258] },
      'config.json': { eos_token_id: 258, bos_token_id: 256 },
    })
    const tokenizer = loadTokenizer(dir)
    expect(tokenizer.eosIds).toEqual([257, 258, 259])
    expect(tokenizer.bosId).toBe(256)
    expect(tokenizer.vocabSize).toBe(260)
    expect(tokenizer.encode('Hi', { addSpecialTokens: true })).toEqual([256, 72, 105])
    expect(tokenizer.encode('Hi', { addSpecialTokens: false })).toEqual([72, 105])
    expect(tokenizer.specialTokens.named).toEqual({ bos_token: '<|begin_of_text|>', eos_token: '<|im_end|>' })
    expect(tokenizer.stopIds).toEqual([257, 258, 259])
  })

  it("adds the chat template's end-of-turn token to the stop ids when it is special", () => {
    const dir = modelDir({
      'tokenizer.json': byteLevelJson(['<|endoftext|>', '<|im_start|>', '<|im_end|>']),
      'tokenizer_config.json': { bos_token: null, eos_token: '<|endoftext|>', chat_template: chatml },
      'generation_config.json': { eos_token_id: 256 },
    })
    const tokenizer = loadTokenizer(dir)
    expect(tokenizer.bosId).toBeNull()
    expect(tokenizer.eosIds).toEqual([256])
    expect(tokenizer.stopIds).toEqual([256, 258])
  })

  it('does without the optional files', () => {
    const tokenizer = loadTokenizer(modelDir({ 'tokenizer.json': byteLevelJson(['</s>']) }))
    expect(tokenizer.eosIds).toEqual([])
    expect(tokenizer.stopIds).toEqual([])
    expect(tokenizer.bosId).toBeNull()
  })

  function loadError(dir: string): TokenizerFileError {
    try {
      loadTokenizer(dir)
    } catch (err) {
      if (err instanceof TokenizerFileError) return err
      throw err
    }
    throw new Error('loadTokenizer did not fail')
  }

  it('names the file when tokenizer.json is missing, damaged or unsupported', () => {
    const missing = modelDir({ 'config.json': {} })
    expect(loadError(missing).file).toBe(join(missing, 'tokenizer.json'))
    expect(loadError(missing).message).toMatch(/tokenizer\.json was not found/)

    const damaged = modelDir({ 'tokenizer.json': '{"model": {"type": "BPE", "vocab": {' })
    expect(loadError(damaged).message).toMatch(new RegExp(`^${join(damaged, 'tokenizer.json')} is not valid JSON`))

    expect(loadError(modelDir({ 'tokenizer.json': { version: '1.0' } })).message).toMatch(/is not a valid tokenizer\.json \(model: /)

    const unsupported = modelDir({ 'tokenizer.json': { ...byteLevelJson([]), pre_tokenizer: { type: 'FancySplit' } } })
    expect(loadError(unsupported).message).toMatch(/cannot run \(Unknown PreTokenizer type: FancySplit\)/)
  })

  it('names the file when an optional file is damaged', () => {
    const dir = modelDir({ 'tokenizer.json': byteLevelJson([]), 'generation_config.json': { eos_token_id: 'two' } })
    const err = loadError(dir)
    expect(err.file).toBe(join(dir, 'generation_config.json'))
    expect(err.message).toMatch(/is not a valid generation_config\.json \(eos_token_id: /)
  })
})
