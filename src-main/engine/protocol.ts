// The messages between the engine host (main process) and the engine worker (child process), and
// the table of engine methods. Both sides validate what they receive: the other end is a separate
// program that may be a different build, or may have crashed halfway through a message.
import { z } from 'zod'
import { ApiErrorShape } from '../contract/errors'
import { SystemInfo } from '../contract/system'

export const CpuBenchmarkParams = z.strictObject({
  /** How long to measure; the benchmark checks for cancellation several times a second. */
  seconds: z.number().positive().max(600),
})
export const CpuBenchmarkProgress = z.object({
  /** Of the requested duration, 0..1. */
  fraction: z.number().min(0).max(1),
  /** Average fp32 GFLOP/s so far. */
  gflops: z.number().nonnegative(),
})
export const CpuBenchmarkResult = z.object({
  gflops: z.number().nonnegative(),
  iterations: z.number().int().nonnegative(),
  seconds: z.number().nonnegative(),
})
export type CpuBenchmarkParams = z.infer<typeof CpuBenchmarkParams>
export type CpuBenchmarkProgress = z.infer<typeof CpuBenchmarkProgress>
export type CpuBenchmarkResult = z.infer<typeof CpuBenchmarkResult>

/** Every engine method: its params, the progress it reports while running, and its result. */
export const engineMethods = {
  systemInfo: { params: z.strictObject({}), progress: z.never(), result: SystemInfo },
  cpuBenchmark: { params: CpuBenchmarkParams, progress: CpuBenchmarkProgress, result: CpuBenchmarkResult },
} as const

export type EngineMethod = keyof typeof engineMethods
export type EngineMethods = {
  [M in EngineMethod]: {
    params: z.infer<(typeof engineMethods)[M]['params']>
    progress: z.infer<(typeof engineMethods)[M]['progress']>
    result: z.infer<(typeof engineMethods)[M]['result']>
  }
}
export type ParamsOf<M extends EngineMethod> = EngineMethods[M]['params']
export type ProgressOf<M extends EngineMethod> = EngineMethods[M]['progress']
export type ResultOf<M extends EngineMethod> = EngineMethods[M]['result']

export function isEngineMethod(method: string): method is EngineMethod {
  return Object.hasOwn(engineMethods, method)
}

/** Call ids are chosen by the host, unique per worker process. */
const CallId = z.number().int().nonnegative()

/** host → worker */
export const HostMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('call'), id: CallId, method: z.string(), params: z.unknown() }),
  z.object({ type: z.literal('cancel'), id: CallId }),
])
export type HostMessage = z.infer<typeof HostMessage>
export type CallMessage = Extract<HostMessage, { type: 'call' }>
export type CancelMessage = Extract<HostMessage, { type: 'cancel' }>

/** worker → host; `ready` comes once, when the worker listens for calls. */
export const WorkerMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  z.object({ type: z.literal('result'), id: CallId, value: z.unknown() }),
  z.object({ type: z.literal('error'), id: CallId, error: ApiErrorShape }),
  z.object({ type: z.literal('progress'), id: CallId, data: z.unknown() }),
])
export type WorkerMessage = z.infer<typeof WorkerMessage>
