import { resolve } from 'node:path'
import { defaultMaxShardBytes, quantizeBlocksizes, type QuantizeProgress } from '../../engine/quantize-protocol'
import type { Command } from '../command'
import { numberOption, requireString, whileInterruptible } from '../options'
import { UserError } from '../user-error'

const units: Record<string, number> = { '': 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 }

/** "2GB", "500MB", "1.5GiB" or a number of bytes (huggingface_hub's sizes: KB/MB/GB are decimal). */
export function parseSize(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text)
  const unit = match ? units[match[2]!.toUpperCase()] : undefined
  if (!match || unit === undefined) return null
  const bytes = Math.floor(Number(match[1]) * unit)
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : null
}

function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`
  return `${(bytes / 1e3).toFixed(1)} kB`
}

export const quantizeCommand: Command = {
  name: 'quantize',
  summary: 'Write a 4-bit NF4 copy of a model that bitsandbytes/transformers can load',
  usage: 'attune quantize <model-dir> --out <dir> [--blocksize 64] [--no-double-quant] [--max-shard-size 2GB]',
  options: {
    out: { type: 'string' },
    blocksize: { type: 'string', default: '64' },
    'no-double-quant': { type: 'boolean', default: false },
    'max-shard-size': { type: 'string' },
  },
  async run(context) {
    if (context.positionals.length !== 1) {
      throw new UserError(
        context.positionals.length === 0
          ? 'attune quantize needs the model folder: attune quantize <model-dir> --out <dir>.'
          : `attune quantize takes one model folder, not ${context.positionals.length} (${context.positionals.join(', ')}).`,
      )
    }
    const modelDir = resolve(context.positionals[0]!)
    const outDir = resolve(requireString(context.options, 'out'))
    const blocksize = numberOption(context.options, 'blocksize', { integer: true, min: 32, max: 4096 })
    if (!(quantizeBlocksizes as readonly number[]).includes(blocksize)) {
      throw new UserError(`--blocksize must be a power of two from 32 to 4096 (bitsandbytes' block sizes), not ${blocksize}.`)
    }
    let maxShardBytes = defaultMaxShardBytes
    const shardSize = context.options['max-shard-size']
    if (shardSize !== undefined) {
      const parsed = parseSize(String(shardSize))
      if (parsed === null) throw new UserError(`--max-shard-size must be a size such as 2GB, 500MB or a number of bytes, not "${String(shardSize)}".`)
      maxShardBytes = parsed
    }
    const doubleQuant = context.options['no-double-quant'] !== true

    const { engine } = context.services()
    let reportedAt = 0
    const report = (p: QuantizeProgress) => {
      // A line per tensor would flood the terminal for a large model: a few a second, and the last.
      const now = Date.now()
      if (p.phase === 'quantizing' && p.done < p.total && now - reportedAt < 250) return
      reportedAt = now
      context.err(p.phase === 'quantizing' ? `quantizing: ${p.done}/${p.total} tensors` : 'writing config.json and tokenizer files')
    }
    const result = await whileInterruptible((signal) =>
      engine.call('quantize', { modelDir, outDir, blocksize, doubleQuant, maxShardBytes }, { signal, onProgress: report }),
    )
    if (context.json) context.out(JSON.stringify(result))
    else {
      context.out(
        `4-bit NF4 model written to ${result.outDir} (${result.quantizedWeights} linear weights quantized${doubleQuant ? ' with double quantization' : ''}, ${formatBytes(result.totalSize)} of weights).`,
      )
    }
  },
}
