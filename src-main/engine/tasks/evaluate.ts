// `attune eval` in the worker: read the dataset with cli.md's semantics, encode each record as
// training would (targets, truncation), and report the mean cross-entropy over all target tokens.
import { ApiError } from '../../contract/errors'
import { encodeRecord, EncodeError } from '../../domain/dataset/encode'
import { readDatasetFile } from '../../domain/dataset/read'
import { describeProblem } from '../../domain/dataset/types'
import type { EngineAddon, NativeCancelToken } from '../addon'
import { applyAdapter, useModel } from '../loaded-model'
import type { ParsedParamsOf, ProgressOf, ResultOf } from '../protocol'

/** How many problems an error lists before "and N more". */
const listedProblems = 5

export async function evaluate(
  addon: EngineAddon,
  params: ParsedParamsOf<'evaluate'>,
  onProgress: (progress: ProgressOf<'evaluate'>) => void,
  cancel: NativeCancelToken,
): Promise<ResultOf<'evaluate'>> {
  const data = await readDatasetFile(params.dataFile, { format: params.format })
  if (data.problems.length > 0 || data.records.length === 0) {
    const lines = data.problems.slice(0, listedProblems).map(describeProblem)
    const more = data.problems.length > listedProblems ? `\n…and ${data.problems.length - listedProblems} more (attune check-data lists them all)` : ''
    const why = data.records.length === 0 && lines.length === 0 ? 'it holds no records' : `it has problems:\n${lines.join('\n')}${more}`
    throw new ApiError('USER_ERROR', `${params.dataFile} cannot be evaluated: ${why}`)
  }
  const loaded = await useModel(addon, params.modelDir, params.threads)
  await applyAdapter(loaded, params.adapterDir)
  let sum = 0
  let tokens = 0
  let truncated = 0
  let reportedAt = 0
  for (const [index, { record, ...location }] of data.records.entries()) {
    let encoded
    try {
      encoded = encodeRecord(record, { tokenizer: loaded.tokenizer, template: loaded.template, seqLen: params.seqLen })
    } catch (error) {
      if (error instanceof EncodeError) throw new ApiError('USER_ERROR', `${params.dataFile}, ${describeProblem({ ...location, message: error.message })}`)
      throw error
    }
    if (encoded.truncated) truncated++
    const loss = await loaded.native.sequenceLoss(Int32Array.from(encoded.ids), Int32Array.from(encoded.labels), cancel)
    sum += loss.sum
    tokens += loss.count
    // A few updates a second are enough for a progress bar.
    const now = Date.now()
    if (now - reportedAt >= 250 || index + 1 === data.records.length) {
      reportedAt = now
      onProgress({ records: index + 1, totalRecords: data.records.length })
    }
  }
  if (tokens === 0) throw new ApiError('USER_ERROR', `${params.dataFile} has no target tokens to score at --seq-len ${params.seqLen}.`)
  const loss = sum / tokens
  return { loss, tokens, perplexity: Math.exp(loss), records: data.records.length, truncated }
}
