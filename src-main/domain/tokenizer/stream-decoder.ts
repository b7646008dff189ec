import { createCleanupStream } from './cleanup'

/** Turns generated ids into text as they arrive. */
export interface StreamDecoder {
  /** Adds one id; returns only the text it completes: '' while a character is still incomplete. */
  push(id: number): string
  /**
   * Ends the stream and returns what was held back (an incomplete character decodes to U+FFFD,
   * as decode would). All the pushes' text plus this equals decoding all the ids at once.
   */
  flush(): string
}

/**
 * Decodes a window of ids and emits what the newest ones add. The window begins with the ids
 * emitted last time, so effects at the start of a decode (Metaspace and Strip drop a leading
 * space) fall on text both decodes share and cancel out. A window whose text ends in U+FFFD, or
 * adds nothing (a skipped special token), is held: the next id may complete a UTF-8 sequence
 * split across byte tokens, and moving the window past an empty token would strip the space of
 * the next. `decodeRaw` must not clean up tokenization spaces: that is done after, by a stream
 * that knows which text is still open to it.
 */
export function createStreamDecoder(decodeRaw: (ids: readonly number[]) => string, cleanUp: boolean): StreamDecoder {
  const ids: number[] = []
  let windowStart = 0
  let readEnd = 0
  const cleanup = cleanUp ? createCleanupStream() : null

  function fresh(): string {
    const known = decodeRaw(ids.slice(windowStart, readEnd))
    const text = decodeRaw(ids.slice(windowStart))
    if (text.length <= known.length || text.endsWith('\uFFFD') || !text.startsWith(known)) return ''
    windowStart = readEnd
    readEnd = ids.length
    return text.slice(known.length)
  }

  return {
    push(id) {
      ids.push(id)
      const text = fresh()
      return cleanup ? cleanup.push(text) : text
    },
    flush() {
      const text = decodeRaw(ids.slice(windowStart)).slice(decodeRaw(ids.slice(windowStart, readEnd)).length)
      windowStart = readEnd = ids.length
      return cleanup ? cleanup.push(text) + cleanup.flush() : text
    },
  }
}
