// JSON records: JSONL (one record per line) and a JSON array of records, read line by line.
// Both give one item per record, a parsed value or the problem that stops it from being one.

import type { TextLine } from './lines'
import type { Location, Problem } from './types'

export type RawItem = { kind: 'value'; location: Location; value: unknown } | { kind: 'problem'; problem: Problem }

/** Why JSON.parse refused a text, in plain words with the column (V8's message, without "in JSON at position N"). */
export function jsonReason(error: unknown, columnOffset = 0): string {
  const raw = error instanceof Error ? error.message : String(error)
  const position = /at position (\d+)/.exec(raw)
  let reason = raw
    .replace(/\s*in JSON at position \d+.*$/s, '')
    .replace(/,\s*".*" is not valid JSON$/s, '')
    .trim()
  if (reason.length > 0) reason = reason[0]!.toLowerCase() + reason.slice(1)
  if (reason === 'unexpected end of JSON input') reason = 'it ends too early'
  return position ? `${reason} (column ${Number(position[1]) + 1 + columnOffset})` : reason
}

const utf8Message = 'is not valid UTF-8 text: save the file as UTF-8 (most editors offer it under "Save as" or "Encoding")'

/** One JSONL line: a record's JSON value, or why it isn't one. */
export function parseJsonlLine(line: TextLine): RawItem {
  const location: Location = { unit: 'line', line: line.number }
  if (!line.validUtf8) return { kind: 'problem', problem: { ...location, message: `the line ${utf8Message}` } }
  if (line.text.trim() === '') {
    return { kind: 'problem', problem: { ...location, message: 'the line is blank; each line must hold one record (remove the empty line)' } }
  }
  try {
    return { kind: 'value', location, value: JSON.parse(line.text) }
  } catch (error) {
    // A line that ends before its JSON does (a record spread over several lines) gets a hint.
    const position = /at position (\d+)/.exec(error instanceof Error ? error.message : '')
    const endsEarly = position ? Number(position[1]) >= line.text.trimEnd().length : /end of JSON input|Unterminated/i.test(String(error))
    const hint = endsEarly ? '; each record must be a whole JSON object on a single line' : ''
    return { kind: 'problem', problem: { ...location, message: `the line is not valid JSON: ${jsonReason(error)}${hint}` } }
  }
}

/**
 * Reads a JSON array of records as it arrives, line by line, without holding more than one record:
 * it tracks strings and nesting to find where each top-level element ends, then parses that
 * element alone. Problems name the record (1-based) and the line it starts on.
 */
export class JsonArrayReader {
  private state: 'before' | 'inside' | 'after' = 'before'
  private depth = 0 // nesting inside the current element
  private inString = false
  private escaped = false
  private element: string[] = []
  private elementStartLine = 0
  private elementHasText = false
  private elementBroken: string | undefined
  private recordIndex = 0
  private trailingReported = false
  /** After a record broken by quotes left open: a comma starting the next line belongs to it. */
  private skipComma = false
  private lastLine = 0
  private lineValid = true

  push(line: TextLine): RawItem[] {
    const items: RawItem[] = []
    this.lastLine = line.number
    const text = line.text
    this.lineValid = line.validUtf8
    let lineReported = false
    let segmentStart = 0 // start of this line's part of the current element
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (c === 0xfffd && !line.validUtf8 && this.state !== 'inside') {
        // Undecodable bytes outside any record.
        if (!lineReported) items.push({ kind: 'problem', problem: { unit: 'line', line: line.number, message: `the line ${utf8Message}` } })
        lineReported = true
        continue
      }
      if (this.state === 'before') {
        if (isSpace(c)) continue
        if (c === 0x5b /* [ */) {
          this.state = 'inside'
          this.startElement(line.number)
          segmentStart = i + 1
          continue
        }
        items.push({ kind: 'problem', problem: { unit: 'line', line: line.number, message: 'the file does not start with "[", so it is not a JSON array of records' } })
        this.state = 'after'
        this.trailingReported = true
        return items
      }
      if (this.state === 'after') {
        if (!isSpace(c) && !this.trailingReported) {
          this.trailingReported = true
          items.push({ kind: 'problem', problem: { unit: 'line', line: line.number, message: 'there is more text after the "]" that closes the array of records; remove it or move the records inside the array' } })
        }
        continue
      }
      // Inside the array.
      if (this.skipComma && !isSpace(c)) {
        this.skipComma = false
        if (c === 0x2c) {
          segmentStart = i + 1
          continue
        }
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false
        else if (c === 0x5c /* \ */) this.escaped = true
        else if (c === 0x22 /* " */) this.inString = false
        continue
      }
      if (c === 0x22) {
        this.inString = true
        this.elementHasText = true
        continue
      }
      if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
        this.depth++
        this.elementHasText = true
        continue
      }
      if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
        if (this.depth > 0) {
          this.depth--
          continue
        }
        if (c === 0x7d) {
          // A "}" with nothing open: the record is broken; keep reading to find the next one.
          this.elementBroken ??= 'it has a "}" that closes nothing'
          this.elementHasText = true
          continue
        }
        // The "]" that closes the array.
        this.append(text.slice(segmentStart, i))
        this.finishElement(items, true)
        this.state = 'after'
        continue
      }
      if (c === 0x2c /* , */ && this.depth === 0) {
        this.append(text.slice(segmentStart, i))
        this.finishElement(items, false)
        this.startElement(line.number)
        segmentStart = i + 1
        continue
      }
      if (!isSpace(c)) this.elementHasText = true
    }
    if (this.state === 'inside') {
      if (this.inString) {
        // JSON text in quotes can't go on past the end of its line: the record is broken there,
        // and the next record is taken to start on the next line (with or without its comma).
        this.elementBroken ??= `a text in quotes on line ${line.number} is not closed on that line`
        this.inString = false
        this.escaped = false
        this.append(text.slice(segmentStart))
        this.finishElement(items, false)
        this.startElement(line.number + 1)
        this.skipComma = true
        return items
      }
      this.append(text.slice(segmentStart) + '\n')
      if (!this.elementHasText) this.elementStartLine = line.number + 1
    }
    return items
  }

  end(): RawItem[] {
    if (this.state === 'before') {
      return [{ kind: 'problem', problem: { unit: 'file', line: 0, message: 'The file is empty: it holds no records.' } }]
    }
    if (this.state === 'inside') {
      const where = this.elementHasText ? ` inside record ${this.recordIndex + 1}` : ''
      return [
        {
          kind: 'problem',
          problem: {
            unit: this.elementHasText ? 'record' : 'line',
            line: this.elementHasText ? this.recordIndex + 1 : this.lastLine,
            ...(this.elementHasText ? { fileLine: this.elementStartLine } : {}),
            message: `the JSON array is never closed: the file ends${where} before the final "]" (is the file cut short?)`,
          },
        },
      ]
    }
    return []
  }

  /** Adds this line's part of the current element; undecodable bytes in it break the element. */
  private append(segment: string): void {
    if (!this.lineValid && segment.includes('\uFFFD')) this.elementBroken ??= `it ${utf8Message}`
    if (this.elementBroken === undefined) this.element.push(segment)
  }

  private startElement(lineNumber: number): void {
    this.element = []
    this.elementStartLine = lineNumber
    this.elementHasText = false
    this.elementBroken = undefined
    this.depth = 0
  }

  private finishElement(items: RawItem[], closing: boolean): void {
    const elementText = this.element.join('')
    this.element = []
    if (!this.elementHasText) {
      // "[]" and a trailing comma before "]" hold no record; an empty slot between commas is a mistake.
      if (closing) return
      this.recordIndex++
      items.push({ kind: 'problem', problem: { unit: 'record', line: this.recordIndex, fileLine: this.elementStartLine, message: 'the record is missing: there are two commas in a row' } })
      return
    }
    this.recordIndex++
    const location: Location = { unit: 'record', line: this.recordIndex, fileLine: this.elementStartLine }
    if (this.elementBroken !== undefined) {
      items.push({ kind: 'problem', problem: { ...location, message: `the record is not valid JSON: ${this.elementBroken}` } })
      return
    }
    try {
      items.push({ kind: 'value', location, value: JSON.parse(elementText) })
    } catch (error) {
      items.push({ kind: 'problem', problem: { ...location, message: `the record is not valid JSON: ${jsonReason(error).replace(/ \(column \d+\)$/, '')}` } })
    }
  }
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d
}
