// Attune's tokenizer against transformers' own outputs on the golden fixtures
// (test/golden/fixtures/<name>/reference.json, written by test/golden/make_golden.py).
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { goldenDir, goldenFixtures, goldenReference, itFindsTheGoldenFixtures } from './support/golden'
import { loadTokenizer } from '../../src-main/domain/tokenizer/load'

interface TokenizationCase {
  text: string
  ids: number[]
  ids_plain: number[]
  decoded: string
  decoded_skip_special: string
}
interface Reference {
  meta: { bos_token_id: number | null; eos_token_ids: number[]; vocab_size_tokenizer: number }
  tokenization: TokenizationCase[]
}

itFindsTheGoldenFixtures()

describe.each(goldenFixtures)('%s', (name) => {
  const dir = join(goldenDir, name)
  const reference = goldenReference<Reference>(name)
  const tokenizer = loadTokenizer(dir)

  it('has the ids transformers has', () => {
    expect(tokenizer.bosId).toBe(reference.meta.bos_token_id)
    expect(tokenizer.eosIds).toEqual(reference.meta.eos_token_ids)
    expect([...tokenizer.stopIds]).toEqual(expect.arrayContaining([...tokenizer.eosIds]))
    expect(tokenizer.vocabSize).toBe(reference.meta.vocab_size_tokenizer)
  })

  it.each(reference.tokenization.map((c) => [JSON.stringify(c.text), c] as const))('encodes and decodes %s', (_, c) => {
    expect(tokenizer.encode(c.text, { addSpecialTokens: true })).toEqual(c.ids)
    expect(tokenizer.encode(c.text, { addSpecialTokens: false })).toEqual(c.ids_plain)
    expect(tokenizer.decode(c.ids)).toBe(c.decoded)
    expect(tokenizer.decode(c.ids, { skipSpecialTokens: true })).toBe(c.decoded_skip_special)
  })

  it.each(reference.tokenization.map((c) => [JSON.stringify(c.text), c] as const))('streams %s as decode does', (_, c) => {
    for (const skipSpecialTokens of [false, true]) {
      const stream = tokenizer.createStreamDecoder({ skipSpecialTokens })
      const pieces = c.ids.map((id) => stream.push(id))
      pieces.push(stream.flush())
      for (const piece of pieces) expect(piece).not.toContain('\uFFFD')
      expect(pieces.join('')).toBe(skipSpecialTokens ? c.decoded_skip_special : c.decoded)
    }
  })
})
