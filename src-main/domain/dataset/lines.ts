// Splits a byte stream into text lines, one chunk at a time, so a large file never has to be in
// memory at once: LF or CRLF line ends, a UTF-8 byte order mark before line 1, and a final newline
// are all accepted. Each line is decoded on its own, so invalid UTF-8 is reported on its line.

export interface TextLine {
  /** 1-based. */
  number: number
  /** Without its line end; undecodable bytes become U+FFFD (and `validUtf8` is false). */
  text: string
  validUtf8: boolean
}

const LF = 0x0a
const CR = 0x0d

export class LineSplitter {
  private pending: Uint8Array[] = []
  private pendingLength = 0
  private lineNumber = 0
  private readonly strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
  private readonly lenient = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true })

  /** The complete lines in this chunk (with what was left over from earlier chunks). */
  push(chunk: Uint8Array): TextLine[] {
    const lines: TextLine[] = []
    let start = 0
    for (;;) {
      const end = chunk.indexOf(LF, start)
      if (end < 0) break
      let bytes = chunk.subarray(start, end)
      if (this.pendingLength > 0) {
        bytes = this.takePending(bytes)
      }
      lines.push(this.decode(bytes))
      start = end + 1
    }
    if (start < chunk.length) {
      // Copied: the caller may reuse its buffer for the next chunk.
      this.pending.push(chunk.slice(start))
      this.pendingLength += chunk.length - start
    }
    return lines
  }

  /** The last line when the file does not end with a newline. */
  end(): TextLine[] {
    if (this.pendingLength === 0) return []
    return [this.decode(this.takePending(new Uint8Array(0)))]
  }

  private takePending(tail: Uint8Array): Uint8Array {
    const joined = new Uint8Array(this.pendingLength + tail.length)
    let offset = 0
    for (const part of this.pending) {
      joined.set(part, offset)
      offset += part.length
    }
    joined.set(tail, offset)
    this.pending = []
    this.pendingLength = 0
    return joined
  }

  private decode(raw: Uint8Array): TextLine {
    let bytes = raw
    this.lineNumber++
    if (this.lineNumber === 1 && bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3)
    if (bytes.length > 0 && bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, bytes.length - 1)
    try {
      return { number: this.lineNumber, text: this.strict.decode(bytes), validUtf8: true }
    } catch {
      return { number: this.lineNumber, text: this.lenient.decode(bytes), validUtf8: false }
    }
  }
}

/** All lines of an in-memory file. */
export function splitLines(bytes: Uint8Array): TextLine[] {
  const splitter = new LineSplitter()
  return [...splitter.push(bytes), ...splitter.end()]
}
