// Reading a dataset file into training records (cli.md, "Data semantics"): JSONL, a JSON array
// of records or CSV, streamed a chunk at a time, so a large file is never in memory at once.
// Every record comes out as a valid training record or as problems naming its line (CSV row,
// array record): nothing is dropped silently, and the caller decides what to do with bad records.

import { open } from 'node:fs/promises'
import { basename } from 'node:path'
import { CsvReader, type CsvDelimiter, type CsvRow } from './csv'
import { csvRecord, planCsv, type ColumnMapping, type CsvPlan } from './csv-mapping'
import { detectFormat, exampleOf, validateRecord, type Validation } from './formats'
import { JsonArrayReader, parseJsonlLine, type RawItem } from './json-records'
import { LineSplitter, type TextLine } from './lines'
import { explainDocument, sniffBytes, sniffFile, type DocumentKind, type FileKind } from './sniff'
import type { DatasetFormat, DatasetRecord, FormatChoice, Location, Problem, RecordFormat } from './types'

export interface ReadOptions {
  /** `--format`: auto (the default) detects it from the file. */
  format?: FormatChoice
  /** CSV only: column → role, as chosen in the app's column-mapping step; found by name otherwise. */
  mapping?: ColumnMapping
  /** Called after each chunk read from a file (about 1 MB), for a progress display. */
  onProgress?: (bytesRead: number, totalBytes: number) => void
}

export type ScanItem = { kind: 'record'; record: DatasetRecord } | { kind: 'problem'; problem: Problem }

/** What reading learnt about the file as a whole. */
export interface DatasetShape {
  fileKind: FileKind['kind']
  /** The format to report and store: `csv` for a CSV file; null when it could not be told. */
  format: DatasetFormat | null
  /** What the records are read as (for a CSV: what its columns make). */
  recordFormat: RecordFormat | null
  /** How the format was found, in a plain sentence ("alpaca (detected from …)"). */
  explanation: string
  csv?: { delimiter: CsvDelimiter; header: string[]; mapping: ColumnMapping }
  /** Set for a document (ux.md 5): the file is explained, not parsed. */
  document?: DocumentKind
}

export interface DatasetReadResult extends DatasetShape {
  records: DatasetRecord[]
  /** In file order; whole-file problems (unit "file") come first. */
  problems: Problem[]
}

/** How many records auto-detection looks at before deciding. */
export const detectionSample = 50
/** The most items held back for detection, records and problems together. */
const maxHeld = 1000

/** Reads a whole dataset file: all its valid records and all its problems. */
export async function readDatasetFile(path: string, options: ReadOptions = {}): Promise<DatasetReadResult> {
  const records: DatasetRecord[] = []
  const problems: Problem[] = []
  const shape = await scanDatasetFile(path, options, (item) => (item.kind === 'record' ? records.push(item.record) : problems.push(item.problem)))
  return { ...shape, records, problems: sortFileFirst(problems) }
}

/** The same from bytes in memory (`fileName` only helps to tell the kind: .csv, .txt…). */
export function readDatasetBytes(bytes: Uint8Array, fileName: string, options: ReadOptions = {}): DatasetReadResult {
  const records: DatasetRecord[] = []
  const problems: Problem[] = []
  const onItem = (item: ScanItem) => (item.kind === 'record' ? records.push(item.record) : problems.push(item.problem))
  const kind = sniffFile(bytes.subarray(0, sniffBytes), bytes.subarray(Math.max(0, bytes.length - sniffBytes)), fileName, forcedKind(options.format))
  const parser = DatasetParser.forKind(kind, basename(fileName), options)
  if (parser instanceof DatasetParser) {
    const splitter = new LineSplitter()
    for (const line of splitter.push(bytes)) parser.push(line).forEach(onItem)
    for (const line of splitter.end()) parser.push(line).forEach(onItem)
    parser.end().forEach(onItem)
    return { ...parser.shape(), records, problems: sortFileFirst(problems) }
  }
  return { ...parser.shape, records, problems: [parser.problem] }
}

/**
 * Streams a dataset file through `onItem`, one valid record or problem at a time, in file order
 * (auto-detection holds back the first records until it has seen enough); resolves to the shape.
 */
export async function scanDatasetFile(path: string, options: ReadOptions, onItem: (item: ScanItem) => void): Promise<DatasetShape> {
  const file = await open(path, 'r')
  try {
    const { size } = await file.stat()
    const head = new Uint8Array(Math.min(size, sniffBytes))
    await file.read(head, 0, head.length, 0)
    const tail = new Uint8Array(Math.min(size, sniffBytes))
    await file.read(tail, 0, tail.length, size - tail.length)
    const kind = sniffFile(head, tail, basename(path), forcedKind(options.format))
    const parser = DatasetParser.forKind(kind, basename(path), options)
    if (!(parser instanceof DatasetParser)) {
      onItem({ kind: 'problem', problem: parser.problem })
      return parser.shape
    }
    const splitter = new LineSplitter()
    const buffer = new Uint8Array(1 << 20)
    let position = 0
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, buffer.length, position)
      if (bytesRead === 0) break
      position += bytesRead
      for (const line of splitter.push(buffer.subarray(0, bytesRead))) parser.push(line).forEach(onItem)
      options.onProgress?.(position, size)
    }
    for (const line of splitter.end()) parser.push(line).forEach(onItem)
    parser.end().forEach(onItem)
    return parser.shape()
  } finally {
    await file.close()
  }
}

function forcedKind(format: FormatChoice | undefined): 'csv' | 'json' | undefined {
  if (format === 'csv') return 'csv'
  return format === undefined || format === 'auto' ? undefined : 'json'
}

function sortFileFirst(problems: Problem[]): Problem[] {
  return [...problems.filter((problem) => problem.unit === 'file'), ...problems.filter((problem) => problem.unit !== 'file')]
}

/** A file that is not a dataset: the shape to report and the one problem that says so. */
interface NotADataset {
  shape: DatasetShape
  problem: Problem
}

/**
 * Turns a dataset file's lines into records and problems, one line at a time. Made for a file
 * kind found by sniffFile; use DatasetParser.forKind.
 */
export class DatasetParser {
  private readonly jsonArray: JsonArrayReader | undefined
  private readonly csv: CsvReader | undefined
  private recordFormat: RecordFormat | null
  private explanation = ''
  /** Items held back until the format is detected. */
  private held: RawItem[] = []
  private heldValues = 0
  private detectionFailed = false
  private csvHeader: string[] | undefined
  private csvPlan: CsvPlan | undefined

  static forKind(kind: FileKind, fileName: string, options: ReadOptions = {}): DatasetParser | NotADataset {
    if (kind.kind === 'document') {
      return {
        shape: { fileKind: 'document', format: null, recordFormat: null, explanation: `${kind.description}, not a dataset`, document: kind.document },
        problem: { unit: 'file', line: 0, message: explainDocument(fileName, kind) },
      }
    }
    if (kind.kind === 'other') {
      return {
        shape: { fileKind: 'other', format: null, recordFormat: null, explanation: kind.description },
        problem: { unit: 'file', line: 0, message: `${fileName} is ${kind.description}, not a dataset: ${kind.advice}.` },
      }
    }
    return new DatasetParser(kind, options)
  }

  private constructor(
    private readonly kind: Extract<FileKind, { kind: 'jsonl' | 'json-array' | 'csv' }>,
    private readonly options: ReadOptions,
  ) {
    const format = options.format ?? 'auto'
    this.recordFormat = format === 'auto' || format === 'csv' ? null : format
    if (this.recordFormat !== null) this.explanation = `${this.recordFormat} (chosen with --format)`
    if (kind.kind === 'json-array') this.jsonArray = new JsonArrayReader()
    if (kind.kind === 'csv') {
      this.csv = new CsvReader(kind.delimiter)
    }
  }

  push(line: TextLine): ScanItem[] {
    if (this.csv) return this.csvRows(this.csv.push(line))
    return this.jsonItems(this.jsonArray ? this.jsonArray.push(line) : [parseJsonlLine(line)])
  }

  end(): ScanItem[] {
    if (this.csv) {
      const items = this.csvRows(this.csv.end())
      if (this.csvHeader === undefined) items.push(fileProblem('The file is empty: it holds no header row and no records.'))
      return items
    }
    const items = this.jsonItems(this.jsonArray ? this.jsonArray.end() : [])
    if (this.recordFormat === null && !this.detectionFailed) items.push(...this.detect())
    return items
  }

  shape(): DatasetShape {
    const fileKind = this.kind.kind
    if (this.csvPlan?.ok && this.csvHeader) {
      return {
        fileKind,
        format: 'csv',
        recordFormat: this.csvPlan.format,
        explanation: this.explanation,
        csv: { delimiter: this.csv?.delimiterInUse ?? ',', header: this.csvHeader, mapping: this.csvPlan.mapping },
      }
    }
    return { fileKind, format: fileKind === 'csv' ? 'csv' : this.recordFormat, recordFormat: this.csv ? null : this.recordFormat, explanation: this.explanation }
  }

  // JSON records -------------------------------------------------------------------------------

  private jsonItems(raw: RawItem[]): ScanItem[] {
    if (this.recordFormat !== null) return raw.map((item) => this.checkJson(item))
    if (this.detectionFailed) return raw.filter((item) => item.kind === 'problem').map((item) => this.checkJson(item))
    for (const item of raw) {
      this.held.push(item)
      if (item.kind === 'value') this.heldValues++
    }
    // Bounded: a file of broken lines must not pile up in memory waiting for records.
    return this.heldValues >= detectionSample || this.held.length >= maxHeld ? this.detect() : []
  }

  /** Decides the format from the held records, then lets them through. */
  private detect(): ScanItem[] {
    const held = this.held
    this.held = []
    const values = held.flatMap((item) => (item.kind === 'value' ? [item.value] : []))
    // Only broken lines so far: each says why; keep waiting for records to detect from.
    if (values.length === 0) return held.map((item) => this.checkJson(item))
    const detection = detectFormat(values)
    if (detection.format === null) {
      this.detectionFailed = true
      const problems = held.filter((item) => item.kind === 'problem').map((item) => this.checkJson(item))
      this.explanation = 'unknown'
      return [fileProblem(`Attune can't tell the format: ${detection.explanation}. Use records like ${exampleOf('text')} or ${exampleOf('messages')}, or choose one with --format.`), ...problems]
    }
    this.recordFormat = detection.format
    this.explanation = detection.explanation
    return held.map((item) => this.checkJson(item))
  }

  private checkJson(item: RawItem): ScanItem {
    if (item.kind === 'problem') return item
    return toItem(validateRecord(item.value, this.recordFormat!), item.location)
  }

  // CSV rows -----------------------------------------------------------------------------------

  private csvRows(rows: CsvRow[]): ScanItem[] {
    const items: ScanItem[] = []
    for (const row of rows) {
      const location: Location = { unit: 'row', line: row.row, fileLine: row.line }
      if (this.csvHeader === undefined) {
        this.csvHeader = row.cells.map((cell, index) => cell.trim() || `column ${index + 1}`)
        if (row.blank) {
          items.push({ kind: 'problem', problem: { ...location, message: 'the header row is blank: the first row must name the columns, e.g. prompt,completion' } })
          this.csvPlan = { ok: false, message: 'no header' }
          continue
        }
        if (row.problem !== undefined) {
          items.push({ kind: 'problem', problem: { ...location, message: `the header row can't be read: ${row.problem}` } })
          this.csvPlan = { ok: false, message: row.problem }
          continue
        }
        const format = this.options.format
        const wanted = format === undefined || format === 'auto' || format === 'csv' ? undefined : format
        this.csvPlan = planCsv(this.csvHeader, { ...(this.options.mapping ? { mapping: this.options.mapping } : {}), ...(wanted ? { wanted } : {}) })
        if (this.csvPlan.ok) {
          const mapping = this.csvPlan.columns.map((column) => `${column.name} → ${column.target}`).join(', ')
          this.explanation = `csv (${mapping}; read as ${this.csvPlan.format})`
        } else {
          items.push({ kind: 'problem', problem: { ...location, message: `the header row can't be used: ${this.csvPlan.message}` } })
          this.explanation = 'csv (columns not mapped)'
        }
        continue
      }
      if (row.blank) {
        items.push({ kind: 'problem', problem: { ...location, message: 'the row is blank; each row must hold one record (remove the empty line)' } })
        continue
      }
      if (row.problem !== undefined) {
        items.push({ kind: 'problem', problem: { ...location, message: row.problem } })
        continue
      }
      if (!this.csvPlan?.ok) continue // the header problem covers every row
      items.push(toItem(csvRecord(row.cells, this.csvPlan, this.csvHeader.length), location))
    }
    return items
  }
}

function toItem(validation: Validation, location: Location): ScanItem {
  if (validation.ok) return { kind: 'record', record: { ...location, record: validation.record } }
  // One item per record: its issues joined, so a bad record counts once.
  const [first] = validation.issues
  const message = validation.issues.map((issue) => issue.message).join('; ')
  return { kind: 'problem', problem: { ...location, ...(first?.field !== undefined ? { field: first.field } : {}), message } }
}

function fileProblem(message: string): ScanItem {
  return { kind: 'problem', problem: { unit: 'file', line: 0, message } }
}
