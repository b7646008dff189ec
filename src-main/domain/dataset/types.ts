// The shapes of the data pipeline (cli.md, "Data semantics"): what a dataset file holds once read,
// what a problem with it looks like, and the three kinds of training record everything becomes.

import type { ChatMessage } from '../chat/messages'

/** The formats the dataset doctor recognises; the same list as the experiment log's. */
export const datasetFormats = ['text', 'messages', 'alpaca', 'sharegpt', 'prompt-completion', 'csv'] as const
export type DatasetFormat = (typeof datasetFormats)[number]

/** The formats of a JSON record (a CSV's columns map onto one of these too). */
export const recordFormats = ['text', 'messages', 'alpaca', 'sharegpt', 'prompt-completion'] as const
export type RecordFormat = (typeof recordFormats)[number]

/** What `--format` accepts. */
export const formatChoices = ['auto', ...datasetFormats] as const
export type FormatChoice = (typeof formatChoices)[number]

// One conversation turn, as the chat module renders it.
export { chatRoles, type ChatMessage, type ChatRole } from '../chat/messages'

/**
 * What one record trains on, whatever its file format: alpaca, sharegpt and chat-style CSV
 * columns become `messages`.
 */
export type TrainingRecord =
  | { kind: 'text'; text: string }
  | { kind: 'prompt-completion'; prompt: string; completion: string }
  | { kind: 'messages'; messages: ChatMessage[] }

/**
 * Where something is in the file, in the words a user finds it with: a JSONL line, a CSV row
 * (the header is row 1, as in a spreadsheet), a record of a JSON array (1-based), or the whole file.
 */
export type LocationUnit = 'line' | 'row' | 'record' | 'file'

export interface Location {
  unit: LocationUnit
  /** The line, row or record number (1-based); 0 for the whole file. */
  line: number
  /** The file line a row or record starts on, when that helps to find it in a text editor. */
  fileLine?: number
}

/** A reason a record (or the file) can't be used: never dropped silently. */
export interface Problem extends Location {
  /** The field it is about, as the user wrote it: `messages[2].role`, or a CSV column name. */
  field?: string
  /** One plain sentence without the location (see describeProblem). */
  message: string
}

/** A valid record with its place in the file. */
export interface DatasetRecord extends Location {
  record: TrainingRecord
}

/** "line 7: …", "row 5 (line 9): …", "record 3 (line 12): …", or just the message for the file. */
export function describeLocation(location: Location): string {
  if (location.unit === 'file') return 'the file'
  const where = `${location.unit} ${location.line}`
  return location.fileLine !== undefined && location.fileLine !== location.line ? `${where} (line ${location.fileLine})` : where
}

export function describeProblem(problem: Problem): string {
  return problem.unit === 'file' ? problem.message : `${describeLocation(problem)}: ${problem.message}`
}
