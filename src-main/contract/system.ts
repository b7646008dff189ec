import { z } from 'zod'

export const CudaDevice = z.object({
  index: z.number().int().nonnegative(),
  name: z.string(),
  memoryBytes: z.number().nonnegative(),
  /** e.g. "8.9" */
  computeCapability: z.string(),
})
export type CudaDevice = z.infer<typeof CudaDevice>

export const CudaInfo = z.object({
  /** True when at least one device can be used by the engine. */
  usable: z.boolean(),
  /** Why no GPU can be used, in plain words; absent when usable. */
  reason: z.string().optional(),
  /** Whether this build of the engine contains the CUDA backend at all. */
  compiled: z.boolean(),
  /** e.g. "13.0"; absent when no driver was found. */
  driverVersion: z.string().optional(),
  runtimeVersion: z.string().optional(),
  devices: z.array(CudaDevice),
})
export type CudaInfo = z.infer<typeof CudaInfo>

export const SystemInfo = z.object({
  cpu: z.object({
    model: z.string(),
    /** Logical processors the engine may use. */
    threads: z.number().int().positive(),
  }),
  memory: z.object({ totalBytes: z.number().nonnegative(), availableBytes: z.number().nonnegative() }),
  os: z.object({ platform: z.string(), arch: z.string() }),
  engine: z.object({ version: z.string(), backends: z.array(z.enum(['cpu', 'cuda'])) }),
  cuda: CudaInfo,
})
export type SystemInfo = z.infer<typeof SystemInfo>

export const AppInfo = z.object({
  version: z.string(),
  /** The folder that holds models, datasets, runs, adapters, exports and attune.db. */
  homeDir: z.string(),
  databasePath: z.string(),
  /** Which transport the services answered on; the renderer shows it in Settings. */
  transport: z.enum(['ipc', 'websocket', 'http', 'direct']),
})
export type AppInfo = z.infer<typeof AppInfo>

export const EngineStatus = z.object({
  state: z.enum(['stopped', 'starting', 'ready', 'crashed']),
  /** Why the worker stopped, when it crashed. */
  reason: z.string().optional(),
})
export type EngineStatus = z.infer<typeof EngineStatus>
