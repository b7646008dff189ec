// What kind of file this is, from its first (and last) bytes and its name: a dataset (JSONL, a
// JSON array, CSV), or something people drop on Data by mistake, a document above all (ux.md 5:
// recognised and explained, not refused with a parse error).

import { splitLines } from './lines'
import { planCsv } from './csv-mapping'
import { sniffDelimiter, type CsvDelimiter } from './csv'

export type DocumentKind = 'pdf' | 'word' | 'rtf' | 'opendocument' | 'html' | 'text' | 'presentation'

export type FileKind =
  | { kind: 'jsonl' }
  | { kind: 'json-array' }
  | { kind: 'csv'; delimiter?: CsvDelimiter }
  /** A document (PDF, Word, plain prose…): to be explained, not parsed. */
  | { kind: 'document'; document: DocumentKind; description: string }
  /** Not a dataset and not a document: a spreadsheet, an archive, binary data, UTF-16 text, an empty file. */
  | { kind: 'other'; description: string; advice: string }

/** How many bytes from the start (and the end) sniffing looks at. */
export const sniffBytes = 64 * 1024

const documentNames: Record<DocumentKind, string> = {
  pdf: 'a PDF document',
  word: 'a Word document',
  rtf: 'an RTF document',
  opendocument: 'an OpenDocument text',
  presentation: 'a presentation',
  html: 'a web page (HTML)',
  text: 'a plain text document',
}

function documentKind(document: DocumentKind): FileKind {
  return { kind: 'document', document, description: documentNames[document] }
}

function extension(fileName: string): string {
  const match = /\.([^./\\]+)$/.exec(fileName)
  return match ? match[1]!.toLowerCase() : ''
}

function startsWith(bytes: Uint8Array, prefix: readonly number[], at = 0): boolean {
  return prefix.every((byte, i) => bytes[at + i] === byte)
}

function latin1(bytes: Uint8Array): string {
  return new TextDecoder('latin1').decode(bytes)
}

/**
 * The kind of a file from its head (the first sniffBytes bytes, or all of a smaller file), its
 * tail (the last sniffBytes, where a ZIP lists its entries) and its name. `forced` is 'csv' for
 * --format csv (read as CSV whatever the name and content); a record format (`json`) changes
 * nothing here: JSON content is JSON, and a .csv's columns are read as that format. A document
 * or binary file is recognised as one whatever is forced.
 */
export function sniffFile(head: Uint8Array, tail: Uint8Array, fileName: string, forced?: 'csv' | 'json'): FileKind {
  const ext = extension(fileName)
  if (head.length === 0) return { kind: 'other', description: 'an empty file', advice: 'it holds no records: add one example per line (JSONL) or per row (CSV)' }
  if (latin1(head.subarray(0, 5)) === '%PDF-') return documentKind('pdf')
  if (startsWith(head, [0x50, 0x4b, 0x03, 0x04]) || startsWith(head, [0x50, 0x4b, 0x05, 0x06])) {
    const names = latin1(head) + latin1(tail)
    if (names.includes('word/')) return documentKind('word')
    if (names.includes('ppt/')) return documentKind('presentation')
    if (names.includes('application/vnd.oasis.opendocument.text')) return documentKind('opendocument')
    if (names.includes('xl/') || names.includes('application/vnd.oasis.opendocument.spreadsheet')) {
      return { kind: 'other', description: 'a spreadsheet workbook', advice: 'save the sheet as CSV (in Excel: File › Save As › "CSV UTF-8") and use the .csv file' }
    }
    return { kind: 'other', description: 'a ZIP archive', advice: 'unzip it and use the dataset file inside (JSONL, JSON or CSV)' }
  }
  if (startsWith(head, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])) {
    if (ext === 'xls') return { kind: 'other', description: 'an Excel workbook', advice: 'save the sheet as CSV (in Excel: File › Save As › "CSV UTF-8") and use the .csv file' }
    if (ext === 'ppt') return documentKind('presentation')
    return documentKind('word')
  }
  if (latin1(head.subarray(0, 5)) === '{\\rtf') return documentKind('rtf')
  if (startsWith(head, [0xff, 0xfe]) || startsWith(head, [0xfe, 0xff])) {
    return { kind: 'other', description: 'a text file saved as UTF-16', advice: 'save it as UTF-8 (most editors offer it under "Save as" or "Encoding") and try again' }
  }
  if (head.includes(0)) return { kind: 'other', description: 'a binary file, not text', advice: 'use a JSONL, JSON or CSV file of examples' }

  // Text: look at its first characters.
  const lines = splitLines(head.length >= sniffBytes ? head.subarray(0, head.lastIndexOf(0x0a) + 1 || head.length) : head)
  const firstLine = lines.find((line) => line.text.trim() !== '')
  if (firstLine === undefined) return { kind: 'other', description: 'an empty file (only blank lines)', advice: 'it holds no records: add one example per line (JSONL) or per row (CSV)' }
  const first = firstLine.text.trimStart()[0]
  if (forced === 'csv') return { kind: 'csv', ...(ext === 'tsv' ? { delimiter: '\t' as const } : {}) }
  if (first === '{') return { kind: 'jsonl' }
  if (first === '[') return { kind: 'json-array' }
  if (ext === 'csv') return { kind: 'csv' }
  if (ext === 'tsv') return { kind: 'csv', delimiter: '\t' }
  if (ext === 'jsonl' || ext === 'json' || ext === 'ndjson') return { kind: 'jsonl' }
  if (/^<(!doctype html|html|\?xml)/i.test(firstLine.text.trimStart())) return documentKind('html')
  // A .txt (or a file without a known name) is a dataset only if its first line is a CSV header
  // Attune can map; otherwise it is prose.
  const delimiter = sniffDelimiter(firstLine.text)
  if (firstLine.text.includes(delimiter)) {
    const header = firstLine.text.split(delimiter).map((cell) => cell.trim().replace(/^"(.*)"$/, '$1'))
    if (planCsv(header).ok) return { kind: 'csv', delimiter }
  }
  return documentKind('text')
}

/** The explanation for a document (ux.md 5), in a few plain sentences. */
export function explainDocument(fileName: string, kind: Extract<FileKind, { kind: 'document' }>): string {
  return (
    `${fileName} is ${kind.description}, not a dataset of examples. ` +
    'Attune learns from examples: a JSONL, JSON or CSV file with one example per record, such as {"text": "…"} or ' +
    '{"messages": [{"role": "user", "content": "…"}, {"role": "assistant", "content": "…"}]}. ' +
    'To teach a model what a document says, first turn it into examples: questions with their answers, or its passages as {"text": "…"} records.'
  )
}
