import { resolve } from 'node:path'
import type { Command } from '../command'
import { formatOption, numberOption, refuseGpuNotYetAvailable, requireString, whileInterruptible } from '../options'

export const evalCommand: Command = {
  name: 'eval',
  summary: "Measure a model's loss and perplexity on a dataset",
  usage: 'attune eval --model <dir> [--adapter <dir>] --data <file> [--format auto] [--seq-len 2048]',
  options: {
    model: { type: 'string' },
    adapter: { type: 'string' },
    data: { type: 'string' },
    format: { type: 'string', default: 'auto' },
    'seq-len': { type: 'string', default: '2048' },
  },
  async run(context) {
    refuseGpuNotYetAvailable(context, 'Evaluation')
    const modelDir = resolve(requireString(context.options, 'model'))
    const dataFile = resolve(requireString(context.options, 'data'))
    const adapterDir = typeof context.options.adapter === 'string' ? resolve(context.options.adapter) : undefined
    const format = formatOption(context.options)
    const seqLen = numberOption(context.options, 'seq-len', { integer: true, min: 1 })
    const { engine } = context.services()
    const result = await whileInterruptible((signal) =>
      engine.call(
        'evaluate',
        { modelDir, ...(adapterDir ? { adapterDir } : {}), dataFile, format, seqLen },
        { signal, onProgress: ({ records, totalRecords }) => context.err(`evaluating: ${records}/${totalRecords} records`) },
      ),
    )
    const summary = { loss: result.loss, tokens: result.tokens, perplexity: result.perplexity }
    if (context.json) context.out(JSON.stringify(summary))
    else {
      context.out(JSON.stringify(summary))
      if (result.truncated > 0) context.err(`${result.truncated} of ${result.records} records were longer than --seq-len ${seqLen} and were truncated.`)
    }
  },
}
