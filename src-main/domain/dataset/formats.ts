// The record formats of cli.md ("Data semantics"): telling which one a file uses, and turning
// each record into a TrainingRecord or the plain-words reasons it can't be one.

import type { ChatMessage, ChatRole, RecordFormat, TrainingRecord } from './types'

/** What a record is wrong about: the field (as the user wrote it) and one plain sentence. */
export interface FieldIssue {
  field?: string
  message: string
}

export type Validation = { ok: true; record: TrainingRecord } | { ok: false; issues: FieldIssue[] }

/** The key(s) that say a record is in a format, strongest first. */
const signatures: Array<[RecordFormat, string[]]> = [
  ['messages', ['messages']],
  ['sharegpt', ['conversations']],
  ['alpaca', ['instruction', 'output']],
  ['prompt-completion', ['prompt', 'completion']],
  ['text', ['text']],
]

/** The formats whose keys a record has (any one of their keys), strongest first. */
export function formatsOf(value: unknown): RecordFormat[] {
  if (!isObject(value)) return []
  return signatures.filter(([, keys]) => keys.some((key) => key in value)).map(([format]) => format)
}

export interface Detection {
  /** null when no record has the keys of any format. */
  format: RecordFormat | null
  /** How many of the records looked at have this format's keys. */
  matching: number
  examined: number
  /** Other formats the same records also fit (e.g. alpaca records that also carry "text"). */
  alsoFits: RecordFormat[]
  /** Other formats some records have instead (a mixed file). */
  mixedWith: RecordFormat[]
  /** A plain sentence saying what was detected and why, or why nothing was. */
  explanation: string
}

/**
 * The format of the first records, from their keys. Every record votes for the formats whose keys
 * it has; the format most records fit wins, and among formats that fit equally many (records
 * holding both "instruction"/"output" and "text", say) the richer one wins: messages, sharegpt,
 * alpaca, prompt-completion, text. The others are reported so the user can force one.
 */
export function detectFormat(values: readonly unknown[]): Detection {
  const counts = new Map<RecordFormat, number>()
  let objects = 0
  const keysSeen = new Set<string>()
  for (const value of values) {
    if (!isObject(value)) continue
    objects++
    for (const key of Object.keys(value)) if (keysSeen.size < 12) keysSeen.add(key)
    for (const format of formatsOf(value)) counts.set(format, (counts.get(format) ?? 0) + 1)
  }
  const examined = values.length
  if (counts.size === 0) {
    const known = '"text"; "messages"; "conversations"; "instruction" and "output"; "prompt" and "completion"'
    const explanation =
      keysSeen.size > 0
        ? `the records have ${[...keysSeen].map((key) => `"${key}"`).join(', ')}, and none of the fields Attune knows (${known})`
        : objects === 0 && examined > 0
          ? 'the records are not JSON objects'
          : `the records have none of the fields Attune knows (${known})`
    return { format: null, matching: 0, examined, alsoFits: [], mixedWith: [], explanation }
  }
  let best: RecordFormat | undefined
  for (const [format] of signatures) {
    const count = counts.get(format) ?? 0
    if (count > 0 && (best === undefined || count > counts.get(best)!)) best = format
  }
  const format = best!
  const matching = counts.get(format)!
  const alsoFits: RecordFormat[] = []
  const mixedWith: RecordFormat[] = []
  for (const [other] of signatures) {
    if (other === format || !counts.has(other)) continue
    // A format every record that fits the winner also fits is an alternative reading; any other is a mix.
    const overlapAll = values.every((value) => !formatsOf(value).includes(format) || formatsOf(value).includes(other))
    if (overlapAll && counts.get(other) === matching) alsoFits.push(other)
    else mixedWith.push(other)
  }
  const which = matching === examined ? (examined === 1 ? 'the first record has' : `the first ${examined} records have`) : `${matching} of the first ${examined} records ${matching === 1 ? 'has' : 'have'}`
  let explanation = `${format} (detected: ${which} ${describeKeys(format)})`
  if (alsoFits.length > 0) explanation += `; they also have ${alsoFits.map(describeKeys).join(' and ')}: --format ${alsoFits[0]} reads them that way instead`
  return { format, matching, examined, alsoFits, mixedWith, explanation }
}

function describeKeys(format: RecordFormat): string {
  const keys = signatures.find(([name]) => name === format)![1]
  return keys.map((key) => `"${key}"`).join(' and ')
}

/** A JSON record as the given format: the training record, or every reason it can't be one. */
export function validateRecord(value: unknown, format: RecordFormat): Validation {
  if (!isObject(value)) {
    const kind = Array.isArray(value) ? 'a list' : value === null ? 'null' : `a ${typeof value}`
    return fail({ message: `the record is ${kind}, not an object like ${exampleOf(format)}` })
  }
  const issues: FieldIssue[] = []
  let validation: Validation
  switch (format) {
    case 'text': {
      const text = requireText(value, 'text', format, issues)
      validation = text === undefined ? fail() : { ok: true, record: { kind: 'text', text } }
      break
    }
    case 'prompt-completion': {
      const prompt = requireText(value, 'prompt', format, issues)
      const completion = requireText(value, 'completion', format, issues)
      validation = prompt === undefined || completion === undefined ? fail() : { ok: true, record: { kind: 'prompt-completion', prompt, completion } }
      break
    }
    case 'alpaca': {
      const instruction = requireText(value, 'instruction', format, issues)
      const input = optionalText(value, 'input', issues)
      const output = requireText(value, 'output', format, issues)
      validation = instruction === undefined || output === undefined || input === null ? fail() : { ok: true, record: { kind: 'messages', messages: alpacaMessages(instruction, input, output) } }
      break
    }
    case 'messages':
      validation = readTurns(value, 'messages', 'role', 'content', roleNames, issues)
      break
    case 'sharegpt':
      validation = readTurns(value, 'conversations', 'from', 'value', sharegptNames, issues)
      break
  }
  if (issues.length > 0) return { ok: false, issues }
  return validation
}

/** alpaca → messages: user = instruction (+ "\n\n" + input when input is not empty), assistant = output. */
export function alpacaMessages(instruction: string, input: string | undefined, output: string): ChatMessage[] {
  const user = input !== undefined && input !== '' ? `${instruction}\n\n${input}` : instruction
  return [
    { role: 'user', content: user },
    { role: 'assistant', content: output },
  ]
}

const roleNames: Record<string, ChatRole> = { system: 'system', user: 'user', assistant: 'assistant' }
const sharegptNames: Record<string, ChatRole> = { system: 'system', human: 'user', gpt: 'assistant' }

function readTurns(
  value: Record<string, unknown>,
  listKey: 'messages' | 'conversations',
  roleKey: 'role' | 'from',
  contentKey: 'content' | 'value',
  names: Record<string, ChatRole>,
  issues: FieldIssue[],
): Validation {
  const list = value[listKey]
  if (list === undefined) return fail(...issues, missing(value, listKey, listKey === 'messages' ? 'messages' : 'sharegpt'))
  if (!Array.isArray(list)) return fail({ field: listKey, message: `"${listKey}" must be a list of turns like [{"${roleKey}": "user", "${contentKey}": "…"}], not ${describeValue(list)}` })
  if (list.length === 0) return fail({ field: listKey, message: `"${listKey}" is empty: it needs at least a user turn and an assistant turn` })
  const allowed = Object.keys(names).join(', ').replace(/, (\w+)$/, ' or $1')
  const messages: ChatMessage[] = []
  list.forEach((turn: unknown, index) => {
    const at = `${listKey}[${index}]`
    if (!isObject(turn)) {
      issues.push({ field: at, message: `"${at}" must be an object like {"${roleKey}": "user", "${contentKey}": "…"}, not ${describeValue(turn)}` })
      return
    }
    const role = turn[roleKey]
    let chatRole: ChatRole | undefined
    if (role === undefined) {
      const other = roleKey === 'role' && 'from' in turn ? ` (it has "from" and "value", as in ShareGPT: use --format sharegpt with "conversations", or "role" and "content")` : roleKey === 'from' && 'role' in turn ? ` (it has "role" and "content": use "messages" for that, or "from" and "value")` : ''
      issues.push({ field: `${at}.${roleKey}`, message: `"${at}.${roleKey}" is missing; use ${allowed}${other}` })
    } else if (typeof role !== 'string' || !Object.hasOwn(names, role)) {
      issues.push({ field: `${at}.${roleKey}`, message: `"${at}.${roleKey}" is ${JSON.stringify(role)}; use ${allowed}` })
    } else {
      chatRole = names[role]
    }
    const content = turnContent(turn[contentKey], `${at}.${contentKey}`, issues)
    if (chatRole !== undefined && content !== undefined) messages.push({ role: chatRole, content })
  })
  if (issues.length > 0) return fail(...issues)
  if (!messages.some((message) => message.role === 'assistant')) {
    const assistant = listKey === 'messages' ? '"assistant"' : '"gpt"'
    return fail({ field: listKey, message: `"${listKey}" has no ${assistant} turn, so there is nothing to learn from` })
  }
  return { ok: true, record: { kind: 'messages', messages } }
}

/** A turn's text: a string, or OpenAI-style content parts that are all text. */
function turnContent(content: unknown, field: string, issues: FieldIssue[]): string | undefined {
  if (content === undefined || content === null) {
    issues.push({ field, message: `"${field}" is missing` })
    return undefined
  }
  let text: string | undefined
  if (typeof content === 'string') text = content
  else if (Array.isArray(content) && content.length > 0 && content.every((part) => isObject(part) && part.type === 'text' && typeof part.text === 'string')) {
    text = content.map((part) => (part as { text: string }).text).join('')
  } else if (Array.isArray(content)) {
    issues.push({ field, message: `"${field}" must be text; a list of parts other than {"type": "text", "text": "…"} (an image, say) can't be trained on` })
    return undefined
  } else {
    issues.push({ field, message: `"${field}" must be text, not ${describeValue(content)}` })
    return undefined
  }
  if (text.trim() === '') {
    issues.push({ field, message: `"${field}" is empty` })
    return undefined
  }
  return text
}

function requireText(value: Record<string, unknown>, key: string, format: RecordFormat, issues: FieldIssue[]): string | undefined {
  const field = value[key]
  if (field === undefined || field === null) {
    issues.push(missing(value, key, format))
    return undefined
  }
  if (typeof field !== 'string') {
    issues.push({ field: key, message: `"${key}" must be text, not ${describeValue(field)}` })
    return undefined
  }
  if (field.trim() === '') {
    issues.push({ field: key, message: `"${key}" is empty` })
    return undefined
  }
  return field
}

/** An optional text field: undefined when absent (or null), null when it is there but not text. */
function optionalText(value: Record<string, unknown>, key: string, issues: FieldIssue[]): string | undefined | null {
  const field = value[key]
  if (field === undefined || field === null) return undefined
  if (typeof field !== 'string') {
    issues.push({ field: key, message: `"${key}" must be text, not ${describeValue(field)}` })
    return null
  }
  return field
}

/** "x" is missing, plus what the record looks like instead when it fits another format. */
function missing(value: Record<string, unknown>, key: string, format: RecordFormat): FieldIssue {
  const other = formatsOf(value).filter((candidate) => candidate !== format)
  const hint = other.length > 0 ? ` (this record looks like ${other[0]}; one file must use one format)` : ''
  return { field: key, message: `"${key}" is missing${hint}` }
}

function fail(...issues: FieldIssue[]): Validation {
  return { ok: false, issues }
}

function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'an object'
  if (typeof value === 'string') return `the text ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`
  return `${typeof value === 'number' ? 'the number' : typeof value === 'boolean' ? 'the value' : `a ${typeof value}`} ${String(value)}`
}

export function exampleOf(format: RecordFormat): string {
  switch (format) {
    case 'text':
      return '{"text": "…"}'
    case 'prompt-completion':
      return '{"prompt": "…", "completion": "…"}'
    case 'alpaca':
      return '{"instruction": "…", "input": "…", "output": "…"}'
    case 'messages':
      return '{"messages": [{"role": "user", "content": "…"}, {"role": "assistant", "content": "…"}]}'
    case 'sharegpt':
      return '{"conversations": [{"from": "human", "value": "…"}, {"from": "gpt", "value": "…"}]}'
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
