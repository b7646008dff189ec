import { statSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import { ChatError } from '../../domain/chat/errors'
import { findChatTemplate } from '../../domain/chat/template'
import { checkDataset, type CheckReport } from '../../domain/dataset/check'
import type { EncodeContext } from '../../domain/dataset/encode'
import { describeProblem } from '../../domain/dataset/types'
import { TokenizerFileError } from '../../domain/tokenizer/errors'
import { loadTokenizer } from '../../domain/tokenizer/load'
import type { Command } from '../command'
import { formatFields } from '../format'
import { formatOption } from '../options'
import { UserError } from '../user-error'

/** The sequence length records are measured against without --seq-len: attune train's default. */
export const defaultSeqLen = 2048
/** How many problems the text report lists (--json lists up to 100). */
const problemsShown = 10
/** Files from this size on get a progress line on stderr every 10%. */
const progressFrom = 32 * 1024 * 1024


/** The --json result of cli.md, exactly these keys; tokens and truncated are null without --model. */
export interface CheckDataJson {
  ok: boolean
  format: string | null
  records: number
  tokens: { min: number; median: number; max: number } | null
  truncated: number | null
  /** line: the line, CSV row or JSON-array record number (null for the whole file); message names it too. */
  problems: Array<{ line: number | null; message: string }>
}

export const checkDataCommand: Command = {
  name: 'check-data',
  summary: 'The dataset doctor: is a file ready to train on, and what to fix',
  usage: 'attune check-data <file> [--model DIR] [--format auto|text|messages|alpaca|sharegpt|prompt-completion|csv] [--seq-len N] [--json]',
  options: {
    model: { type: 'string' },
    format: { type: 'string', default: 'auto' },
    'seq-len': { type: 'string' },
  },
  async run(context) {
    const file = datasetPath(context.positionals)
    const shownName = context.positionals[0]!
    const format = formatOption(context.options)
    const seqLenOption = context.options['seq-len']
    const seqLen = seqLenOption === undefined ? defaultSeqLen : parseSeqLen(seqLenOption)
    const modelDir = typeof context.options.model === 'string' ? context.options.model : undefined
    if (modelDir === undefined && seqLenOption !== undefined) context.err('Note: --seq-len is measured in tokens, which needs --model <dir>; it is ignored without one.')
    const encode = modelDir === undefined ? undefined : loadModel(modelDir, seqLen)

    context.err(`Checking ${basename(file)}…`)
    let shown = 0
    const onProgress = (read: number, total: number) => {
      // A large file (tokenizing runs at a few MB a second) says how far it has got, every 10%.
      const tenths = Math.floor((read / total) * 10)
      if (total < progressFrom || tenths <= shown || tenths >= 10) return
      shown = tenths
      context.err(`  ${tenths * 10}%`)
    }
    const report = await checkDataset(file, { format, onProgress, ...(encode ? { encode } : {}) })

    if (context.json) context.out(JSON.stringify(toJson(report), null, 2))
    else context.out(humanReport(shownName, report, modelDir))
    const verdict = verdictOf(report, modelDir !== undefined)
    // Not usable is a user error: exit code 1, with what to do as the last line (on stderr).
    if (!report.ok) throw new UserError(verdict)
    if (!context.json) context.out(verdict)
  },
}

function datasetPath(positionals: string[]): string {
  if (positionals.length === 0) throw new UserError('Which file? Usage: attune check-data <file> [--model DIR] [--format …] [--seq-len N]')
  if (positionals.length > 1) throw new UserError(`attune check-data checks one file at a time; got ${positionals.length}: ${positionals.join(', ')}.`)
  const path = resolve(positionals[0]!)
  let isFile: boolean
  try {
    isFile = statSync(path).isFile()
  } catch {
    throw new UserError(`${positionals[0]} was not found: check the path.`)
  }
  if (!isFile) throw new UserError(`${positionals[0]} is a folder, not a dataset file: give the JSONL, JSON or CSV file inside it.`)
  return path
}

function parseSeqLen(value: unknown): number {
  const seqLen = Number(value)
  if (!Number.isInteger(seqLen) || seqLen < 1 || seqLen > 1_048_576) throw new UserError(`--seq-len must be a whole number of tokens from 1 to 1048576, not "${String(value)}".`)
  return seqLen
}

function loadModel(modelDir: string, seqLen: number): EncodeContext {
  let isDir = false
  try {
    isDir = statSync(modelDir).isDirectory()
  } catch {
    // reported below
  }
  if (!isDir) throw new UserError(`--model ${modelDir} is not a folder: give a model folder (with tokenizer.json), e.g. one "attune pull" printed.`)
  try {
    return { tokenizer: loadTokenizer(modelDir), template: findChatTemplate(modelDir), seqLen }
  } catch (error) {
    if (error instanceof TokenizerFileError || error instanceof ChatError) throw new UserError(error.message)
    throw error
  }
}

export function toJson(report: CheckReport): CheckDataJson {
  return {
    ok: report.ok,
    format: report.format,
    records: report.records,
    tokens: report.tokens,
    truncated: report.truncated,
    problems: report.problems.map((problem) => ({ line: problem.unit === 'file' ? null : problem.line, message: describeProblem(problem) })),
  }
}

const count = (n: number) => n.toLocaleString('en-US')
const plural = (n: number, one: string, many = `${one}s`) => `${count(n)} ${n === 1 ? one : many}`

function humanReport(file: string, report: CheckReport, modelDir: string | undefined): string {
  const lines = [file]
  if (report.fileKind === 'document' || report.fileKind === 'other') {
    // Not a dataset at all: the explanation is the whole report.
    for (const problem of report.problems) lines.push(`  ${describeProblem(problem)}`)
    return lines.join('\n')
  }
  const fields: Array<[string, string]> = [['Format', report.explanation || (report.format ?? 'unknown')]]
  const recordProblems = report.problemCount - report.problems.filter((problem) => problem.unit === 'file').length
  fields.push(['Records', `${count(report.records)} usable${recordProblems > 0 ? `, ${plural(recordProblems, 'problem')}` : ''}`])
  if (report.tokens) {
    const { min, median, max } = report.tokens
    fields.push(['Tokens', `min ${count(min)}, median ${count(median)}, max ${count(max)} (${basename(modelDir!)})`])
  } else if (modelDir === undefined) {
    fields.push(['Tokens', 'not counted: add --model <dir> to count them'])
  }
  if (report.truncated !== null && report.seqLen !== null) {
    let truncation = report.truncated === 0 ? `none: every record fits in ${count(report.seqLen)} tokens` : `${plural(report.truncated, 'record')} longer than ${count(report.seqLen)} tokens will be cut`
    if (report.emptyAfterTruncation) truncation += `; ${plural(report.emptyAfterTruncation, 'record')} would keep no trained token at all`
    fields.push(['Truncated', truncation])
  }
  lines.push(
    formatFields(fields)
      .split('\n')
      .map((line) => `  ${line}`)
      .join('\n'),
  )
  if (report.problems.length > 0) {
    const shown = report.problems.slice(0, problemsShown)
    lines.push('', report.problemCount > shown.length ? `Problems (the first ${shown.length} of ${count(report.problemCount)}):` : 'Problems:')
    for (const problem of shown) lines.push(`  ${describeProblem(problem)}`)
  }
  return lines.join('\n')
}

function verdictOf(report: CheckReport, withModel: boolean): string {
  if (report.fileKind === 'document') return 'Not usable: this is a document, not a dataset of examples. Turn it into examples first (see above).'
  if (report.fileKind === 'other') return 'Not usable: this is not a dataset file (see above).'
  if (!report.ok) {
    if (report.records === 0) {
      return `Not usable: no record can be used yet. Fix ${report.problemCount === 1 ? 'the problem' : 'the problems'} above and run attune check-data again.`
    }
    return `Not usable: ${plural(report.problemCount, 'problem')} to fix. Correct or remove ${report.problemCount === 1 ? 'that record' : 'those records'} (the numbers above say where) and run attune check-data again.`
  }
  let verdict = `Usable: ${plural(report.records, 'record')} ready to train on.`
  if (report.truncated) verdict += ` ${count(report.truncated)} will be cut to ${count(report.seqLen!)} tokens: raise --seq-len to keep ${report.truncated === 1 ? 'it' : 'them'} whole, or shorten ${report.truncated === 1 ? 'it' : 'them'}.`
  if (!withModel) verdict += ' Add --model <dir> to count tokens and check lengths against --seq-len.'
  return verdict
}
