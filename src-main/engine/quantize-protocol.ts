// The engine method `quantize` (attune quantize, cli.md): its params, progress and result, as
// engineMethods in protocol.ts lists them. Its own file so that the method can grow without
// touching the shared table.
import { z } from 'zod'

/** bitsandbytes' block sizes: powers of two from 32 to 4096. */
export const quantizeBlocksizes = [32, 64, 128, 256, 512, 1024, 2048, 4096] as const

/** huggingface_hub's "2GB": a shard ends before it would pass this many bytes. */
export const defaultMaxShardBytes = 2_000_000_000

export const QuantizeParams = z.strictObject({
  /** A full-precision Hugging Face model folder. */
  modelDir: z.string().min(1),
  /** Where the 4-bit model folder appears (atomically); must not exist, or be an empty folder. */
  outDir: z.string().min(1),
  blocksize: z
    .number()
    .int()
    .refine((value) => (quantizeBlocksizes as readonly number[]).includes(value), { message: 'must be a power of two from 32 to 4096' })
    .default(64),
  doubleQuant: z.boolean().default(true),
  maxShardBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).default(defaultMaxShardBytes),
  /** CPU threads; all logical processors when left out. */
  threads: z.number().int().positive().max(1024).optional(),
})
export const QuantizeProgress = z.object({
  /** quantizing: the weights files are being written; finishing: config and tokenizer files, then the folder swap. */
  phase: z.enum(['quantizing', 'finishing']),
  /** Steps of the native writer (one per source tensor, plus one per weight measured first with double quantization). */
  done: z.number().int().nonnegative(),
  total: z.number().int().nonnegative(),
  /** The tensor just finished. */
  tensor: z.string().optional(),
})
export type QuantizeProgress = z.infer<typeof QuantizeProgress>
export const QuantizeResult = z.object({
  outDir: z.string(),
  /** Every file of the new folder, sorted. */
  files: z.array(z.string()),
  /** The weights files among them (model.safetensors, or the shards and their index). */
  weightsFiles: z.array(z.string()),
  sourceTensors: z.number().int().nonnegative(),
  quantizedWeights: z.number().int().nonnegative(),
  tensorsWritten: z.number().int().nonnegative(),
  /** Bytes of tensor data written. */
  totalSize: z.number().int().nonnegative(),
  /** config.json's quantization_config, as written. */
  quantizationConfig: z.record(z.string(), z.unknown()),
})
export type QuantizeResult = z.infer<typeof QuantizeResult>
