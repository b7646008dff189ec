// The dataset doctor (cli.md, `attune check-data`): reads a whole file once, streaming, and sums it
// up: the format, how many records are usable, their lengths in tokens for a model, how many would
// be truncated, and the first problems. The CLI prints it; the app can show it on Data.

import { EncodeError, encodeRecord, type EncodeContext } from './encode'
import { scanDatasetFile, type DatasetShape, type ReadOptions } from './read'
import type { Problem } from './types'

export interface TokenStats {
  min: number
  median: number
  max: number
}

export interface CheckOptions extends ReadOptions {
  /** A model's tokenizer, chat template and sequence length: token lengths and truncation need them. */
  encode?: EncodeContext
  /** How many problems the report keeps (all are counted); 100 unless told. */
  maxProblems?: number
}

export interface CheckReport extends DatasetShape {
  /** Usable as it is: at least one record, and no problem at all. */
  ok: boolean
  /** Valid records. */
  records: number
  /** Records (lines, rows) with a problem, plus whole-file problems. */
  problemCount: number
  /** The first maxProblems problems: whole-file ones first, then in file order. */
  problems: Problem[]
  /** Token lengths of the valid records before truncation; null without a model (or with no record). */
  tokens: TokenStats | null
  /** Records longer than the sequence length; null without a model. */
  truncated: number | null
  /** Records left with no target token once truncated (they would teach nothing); null without a model. */
  emptyAfterTruncation: number | null
  /** The sequence length the records were measured against; null without a model. */
  seqLen: number | null
}

export async function checkDataset(path: string, options: CheckOptions = {}): Promise<CheckReport> {
  const maxProblems = options.maxProblems ?? 100
  const problems: Problem[] = []
  const fileProblems: Problem[] = []
  let problemCount = 0
  let records = 0
  let measured = 0
  let truncated = 0
  let empty = 0
  let lengths = new Uint32Array(1024)
  let encode = options.encode

  const addProblem = (problem: Problem) => {
    problemCount++
    if (problem.unit === 'file') fileProblems.push(problem)
    else if (problems.length < maxProblems) problems.push(problem)
  }

  const shape = await scanDatasetFile(path, options, (item) => {
    if (item.kind === 'problem') return addProblem(item.problem)
    const { record, ...location } = item.record
    if (encode) {
      try {
        const encoded = encodeRecord(record, encode)
        if (measured === lengths.length) {
          const grown = new Uint32Array(lengths.length * 2)
          grown.set(lengths)
          lengths = grown
        }
        lengths[measured++] = encoded.tokens
        if (encoded.truncated) truncated++
        if (encoded.targets === 0) empty++
      } catch (error) {
        if (!(error instanceof EncodeError)) throw error
        if (error.affectsAll) {
          // Said once for the file; no record can be measured for this model.
          addProblem({ unit: 'file', line: 0, message: `${capitalise(error.message)}.` })
          encode = undefined
        } else {
          addProblem({ ...location, message: error.message })
          return
        }
      }
    }
    records++
  })

  if (records === 0 && problemCount === 0) addProblem({ unit: 'file', line: 0, message: 'The file holds no records.' })
  const sorted = measured > 0 ? lengths.subarray(0, measured).sort() : undefined
  const measuring = encode !== undefined
  return {
    ...shape,
    ok: records > 0 && problemCount === 0,
    records,
    problemCount,
    problems: [...fileProblems, ...problems].slice(0, Math.max(maxProblems, fileProblems.length)),
    tokens: measuring && sorted ? { min: sorted[0]!, median: median(sorted), max: sorted[sorted.length - 1]! } : null,
    truncated: measuring ? truncated : null,
    emptyAfterTruncation: measuring ? empty : null,
    seqLen: measuring ? encode!.seqLen : null,
  }
}

function median(sorted: Uint32Array): number {
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

function capitalise(text: string): string {
  return text.length > 0 ? text[0]!.toUpperCase() + text.slice(1) : text
}
