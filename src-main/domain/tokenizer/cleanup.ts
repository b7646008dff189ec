// transformers' `clean_up_tokenization` (applied by decode when tokenizer_config.json sets
// `clean_up_tokenization_spaces`, as Llama 3 does), done here rather than by the tokenizer
// library so that the stream decoder and decode share one definition.

/** In transformers' order: each replacement runs over the whole text before the next. */
const replacements: readonly (readonly [string, string])[] = [
  [' .', '.'],
  [' ?', '?'],
  [' !', '!'],
  [' ,', ','],
  [" ' ", "'"],
  [" n't", "n't"],
  [" 'm", "'m"],
  [" 's", "'s"],
  [" 've", "'ve"],
  [" 're", "'re"],
]

export function cleanUpTokenizationSpaces(text: string): string {
  let out = text
  for (const [from, to] of replacements) out = out.replaceAll(from, to)
  return out
}

/**
 * Every span of the original text that one replacement can remove a space from: the patterns
 * themselves, and those that match only once " ' " → "'" has closed them up (" n ' t" → " n't").
 * None is longer than 6 characters and all start with a space.
 */
const spans = [...replacements.map(([from]) => from), " n ' t", "  ' m", "  ' s", "  ' ve", "  ' re"]
const longestSpan = Math.max(...spans.map((s) => s.length))

/** Whether some span could start before `cut` and end after it, whatever text follows. */
function couldStraddle(text: string, cut: number): boolean {
  for (let start = Math.max(0, cut - longestSpan + 1); start < cut; start++) {
    if (text[start] !== ' ') continue
    const head = text.slice(start, cut)
    if (spans.some((span) => span.length > head.length && span.startsWith(head))) return true
  }
  return false
}

/**
 * Cleans text that arrives in pieces, holding back the few characters that a later piece could
 * still change (a trailing " " may become " ."), so that the pieces it returns concatenate to
 * cleanUpTokenizationSpaces(all the text).
 */
export function createCleanupStream(): { push(text: string): string; flush(): string } {
  // Starts at a cut no span straddles, so it cleans independently of what came before.
  let pending = ''
  return {
    push(text) {
      pending += text
      let cut = pending.length
      while (cut > 0 && couldStraddle(pending, cut)) cut--
      const out = cleanUpTokenizationSpaces(pending.slice(0, cut))
      pending = pending.slice(cut)
      return out
    },
    flush() {
      const out = cleanUpTokenizationSpaces(pending)
      pending = ''
      return out
    },
  }
}
