// CSV columns mapped onto a record format (cli.md: "csv: a header row; columns mapped to one of
// the formats above, by name, or the app's column-mapping step"). The mapping is `column → role`:
// the app shows it as chips and lets the user change it (ux.md 4); here it is found by name.

import { alpacaMessages, type FieldIssue, type Validation } from './formats'
import type { ChatMessage, RecordFormat } from './types'

export const csvTargets = ['text', 'prompt', 'completion', 'instruction', 'input', 'output', 'system', 'user', 'assistant'] as const
export type CsvTarget = (typeof csvTargets)[number]

/** Column name → what it holds; columns not named (or mapped to "ignore") are not used. */
export type ColumnMapping = Record<string, CsvTarget | 'ignore'>

/** The record format a CSV's mapping makes, with the roles it needs and may have. */
export const csvFormats: Array<{ format: Exclude<RecordFormat, 'sharegpt'>; required: CsvTarget[]; optional: CsvTarget[] }> = [
  { format: 'text', required: ['text'], optional: [] },
  { format: 'prompt-completion', required: ['prompt', 'completion'], optional: [] },
  { format: 'alpaca', required: ['instruction', 'output'], optional: ['input'] },
  { format: 'messages', required: ['user', 'assistant'], optional: ['system'] },
]

/** Column names (lower case, spaces, "-" and "_" ignored) that say what a column holds. */
const names: Record<string, CsvTarget> = {
  text: 'text',
  prompt: 'prompt',
  completion: 'completion',
  instruction: 'instruction',
  input: 'input',
  output: 'output',
  system: 'system',
  systemprompt: 'system',
  user: 'user',
  human: 'user',
  question: 'user',
  assistant: 'assistant',
  gpt: 'assistant',
  answer: 'assistant',
}
/** Names that mean something else next to an "instruction" column (Dolly's instruction/context/response). */
const alpacaNames: Record<string, CsvTarget> = { context: 'input', response: 'output' }

function normalise(column: string): string {
  return column.toLowerCase().replace(/[\s_-]+/g, '')
}

export type CsvPlan =
  | { ok: true; format: Exclude<RecordFormat, 'sharegpt'>; mapping: ColumnMapping; columns: Array<{ index: number; name: string; target: CsvTarget }> }
  | { ok: false; message: string }

/**
 * How to read a CSV with this header: the explicit mapping when given, otherwise one found from
 * the column names; `wanted` is the format asked for with --format (when it is a record format).
 */
export function planCsv(header: readonly string[], options: { mapping?: ColumnMapping; wanted?: RecordFormat } = {}): CsvPlan {
  const columns: Array<{ index: number; name: string; target: CsvTarget }> = []
  const listed = header.map((name) => `"${name}"`).join(', ')
  const seen = new Map<string, number>()
  for (const [index, name] of header.entries()) {
    const earlier = seen.get(name)
    if (earlier !== undefined && (options.mapping ? options.mapping[name] !== undefined && options.mapping[name] !== 'ignore' : names[normalise(name)] !== undefined)) {
      return { ok: false, message: `the header has two columns named "${name}" (columns ${earlier + 1} and ${index + 1}); rename one` }
    }
    seen.set(name, index)
  }
  if (options.mapping) {
    for (const [column, target] of Object.entries(options.mapping)) {
      if (target !== 'ignore' && !(csvTargets as readonly string[]).includes(target)) {
        return { ok: false, message: `the column mapping gives "${column}" the role "${String(target)}"; use one of ${csvTargets.join(', ')} or ignore` }
      }
      const index = seen.get(column)
      if (index === undefined) return { ok: false, message: `the column mapping names a column "${column}" that the header does not have (it has ${listed})` }
      if (target !== 'ignore') columns.push({ index, name: column, target })
    }
    columns.sort((a, b) => a.index - b.index)
  } else {
    const hasInstruction = header.some((name) => names[normalise(name)] === 'instruction')
    for (const [index, name] of header.entries()) {
      const key = normalise(name)
      const target = (hasInstruction ? alpacaNames[key] : undefined) ?? names[key]
      if (target !== undefined) columns.push({ index, name, target })
    }
  }
  for (const [i, column] of columns.entries()) {
    const twin = columns.slice(0, i).find((other) => other.target === column.target)
    if (twin) return { ok: false, message: `the columns "${twin.name}" and "${column.name}" are both mapped to ${column.target}; give one of them another role or ignore it` }
  }
  const targets = new Set(columns.map((column) => column.target))
  const fits = csvFormats.filter(({ required }) => required.some((target) => targets.has(target)))
  if (fits.length === 0) {
    return {
      ok: false,
      message: `no column says what it holds: name them text; or prompt and completion; or instruction, input and output; or system, user and assistant (the header has ${listed})`,
    }
  }
  if (fits.length > 1) {
    const used = columns.map((column) => `"${column.name}" (${column.target})`).join(', ')
    return { ok: false, message: `the columns mix two formats: ${used}; keep the columns of one format, or map the others to ignore` }
  }
  const { format, required, optional } = fits[0]!
  const lacking = required.filter((target) => !targets.has(target))
  if (lacking.length > 0) {
    return { ok: false, message: `${format} needs ${required.join(' and ')} columns, and no column is ${lacking.join(' or ')} (the header has ${listed})` }
  }
  const stray = columns.filter((column) => !required.includes(column.target) && !optional.includes(column.target))
  if (stray.length > 0) {
    return { ok: false, message: `the column "${stray[0]!.name}" (${stray[0]!.target}) does not belong to ${format}, which uses ${[...required, ...optional].join(', ')}; map it to ignore` }
  }
  if (options.wanted !== undefined && options.wanted !== format && !(options.wanted === 'messages' && format === 'alpaca')) {
    return { ok: false, message: `--format ${options.wanted} does not fit the columns: they are ${format} (${columns.map((column) => `"${column.name}" → ${column.target}`).join(', ')})` }
  }
  const mapping: ColumnMapping = {}
  for (const column of columns) mapping[column.name] = column.target
  return { ok: true, format, mapping, columns }
}

/** One CSV row as a training record under a plan; empty required cells are named by column. */
export function csvRecord(cells: readonly string[], plan: Extract<CsvPlan, { ok: true }>, headerLength: number): Validation {
  const issues: FieldIssue[] = []
  if (cells.length !== headerLength) {
    issues.push({ message: `the row has ${cells.length} ${cells.length === 1 ? 'value' : 'values'} but the header has ${headerLength} columns; check for a missing or extra delimiter, or quotes around values that hold one` })
    return { ok: false, issues }
  }
  const values: Partial<Record<CsvTarget, string>> = {}
  const required = csvFormats.find((entry) => entry.format === plan.format)!.required
  for (const column of plan.columns) {
    const value = cells[column.index] ?? ''
    if (value.trim() === '') {
      // An empty optional cell (input, system) just means there is none.
      if (required.includes(column.target)) issues.push({ field: column.name, message: `column "${column.name}" (${column.target}) is empty` })
      continue
    }
    values[column.target] = value
  }
  if (issues.length > 0) return { ok: false, issues }
  switch (plan.format) {
    case 'text':
      return { ok: true, record: { kind: 'text', text: values.text! } }
    case 'prompt-completion':
      return { ok: true, record: { kind: 'prompt-completion', prompt: values.prompt!, completion: values.completion! } }
    case 'alpaca':
      return { ok: true, record: { kind: 'messages', messages: alpacaMessages(values.instruction!, values.input, values.output!) } }
    case 'messages': {
      const messages: ChatMessage[] = []
      if (values.system !== undefined) messages.push({ role: 'system', content: values.system })
      messages.push({ role: 'user', content: values.user! }, { role: 'assistant', content: values.assistant! })
      return { ok: true, record: { kind: 'messages', messages } }
    }
  }
}
