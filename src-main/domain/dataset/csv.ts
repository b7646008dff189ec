// A CSV reader (RFC 4180) fed line by line: values in double quotes may hold the delimiter, line
// breaks (kept as "\n") and doubled quotes ("" for "). Rows are numbered as a spreadsheet numbers
// them: the header is row 1. Lenient where nothing is lost (a quote inside an unquoted value is
// kept as it is), strict where a value would be mangled (text after a closing quote).

import type { TextLine } from './lines'

export interface CsvRow {
  /** 1-based; the header is row 1. */
  row: number
  /** The file line the row starts on. */
  line: number
  cells: string[]
  /** The line is empty (or only spaces). */
  blank: boolean
  /** Why the row's values can't be trusted, if they can't. */
  problem?: string
}

export type CsvDelimiter = ',' | ';' | '\t'

/** The delimiter a header line uses: the most frequent of comma, semicolon and tab outside quotes. */
export function sniffDelimiter(headerLine: string): CsvDelimiter {
  const counts = new Map<CsvDelimiter, number>([
    [',', 0],
    [';', 0],
    ['\t', 0],
  ])
  let quoted = false
  for (const char of headerLine) {
    if (char === '"') quoted = !quoted
    else if (!quoted && counts.has(char as CsvDelimiter)) counts.set(char as CsvDelimiter, counts.get(char as CsvDelimiter)! + 1)
  }
  let best: CsvDelimiter = ','
  for (const [delimiter, count] of counts) if (count > counts.get(best)!) best = delimiter
  return best
}

export class CsvReader {
  private delimiter: CsvDelimiter | undefined
  private rowNumber = 0
  private cells: string[] = []
  private field = ''
  private state: 'start' | 'unquoted' | 'quoted' | 'closed' = 'start'
  private rowLine = 0
  private rowProblem: string | undefined
  private quoteOpenedOn = 0

  constructor(delimiter?: CsvDelimiter) {
    this.delimiter = delimiter
  }

  /** The delimiter given, or the one found in the header line once it has been read. */
  get delimiterInUse(): CsvDelimiter | undefined {
    return this.delimiter
  }

  push(line: TextLine): CsvRow[] {
    const delimiter = (this.delimiter ??= sniffDelimiter(line.text))
    const delimiterCode = delimiter.charCodeAt(0)
    const text = line.text
    const continuing = this.state === 'quoted'
    if (!continuing) {
      this.rowNumber++
      this.rowLine = line.number
      this.cells = []
      this.field = ''
      this.state = 'start'
      this.rowProblem = undefined
      if (text.trim() === '') {
        return [{ row: this.rowNumber, line: line.number, cells: [], blank: true, ...(line.validUtf8 ? {} : { problem: notUtf8(line.number) }) }]
      }
    } else {
      this.field += '\n'
    }
    if (!line.validUtf8) this.rowProblem ??= notUtf8(line.number)

    let runStart = 0 // start of plain characters not yet copied into this.field
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      switch (this.state) {
        case 'start':
          if (c === 0x22 /* " */) {
            this.state = 'quoted'
            this.quoteOpenedOn = line.number
            runStart = i + 1
          } else if (c === delimiterCode) {
            this.cells.push('')
            runStart = i + 1
          } else {
            this.state = 'unquoted'
            runStart = i
          }
          break
        case 'unquoted':
          if (c === delimiterCode) {
            this.cells.push(this.field + text.slice(runStart, i))
            this.field = ''
            this.state = 'start'
            runStart = i + 1
          }
          break
        case 'quoted':
          if (c === 0x22) {
            this.field += text.slice(runStart, i)
            this.state = 'closed'
            runStart = i + 1
          }
          break
        case 'closed':
          if (c === 0x22) {
            // "" inside quotes: one quote character.
            this.field += '"'
            this.state = 'quoted'
            runStart = i + 1
          } else if (c === delimiterCode) {
            this.cells.push(this.field)
            this.field = ''
            this.state = 'start'
            runStart = i + 1
          } else {
            this.rowProblem ??= `value ${this.cells.length + 1} has text after its closing quote; a quote inside a quoted value must be doubled ("")`
            this.field += '"'
            this.state = 'unquoted'
            runStart = i
          }
          break
      }
    }
    if (this.state === 'quoted') {
      this.field += text.slice(runStart)
      return []
    }
    if (this.state === 'unquoted') this.field += text.slice(runStart)
    this.cells.push(this.field)
    this.field = ''
    this.state = 'start'
    return [this.finishRow()]
  }

  /** A quoted value still open at the end of the file. */
  end(): CsvRow[] {
    if (this.state !== 'quoted') return []
    this.cells.push(this.field)
    this.state = 'start'
    this.rowProblem = `the quoted value that starts on line ${this.quoteOpenedOn} is never closed: a closing " is missing (is the file cut short?)`
    return [this.finishRow()]
  }

  private finishRow(): CsvRow {
    const row: CsvRow = { row: this.rowNumber, line: this.rowLine, cells: this.cells, blank: false }
    if (this.rowProblem !== undefined) row.problem = this.rowProblem
    this.cells = []
    return row
  }
}

function notUtf8(line: number): string {
  return `line ${line} is not valid UTF-8 text: save the file as UTF-8 (in Excel: "CSV UTF-8")`
}

/** All rows of an in-memory CSV text (for tests and small files). */
export function parseCsvText(text: string, delimiter?: CsvDelimiter): CsvRow[] {
  const reader = new CsvReader(delimiter)
  const lines = text.split(/\r?\n/)
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop()
  const rows: CsvRow[] = []
  lines.forEach((line, index) => rows.push(...reader.push({ number: index + 1, text: line, validUtf8: true })))
  rows.push(...reader.end())
  return rows
}
