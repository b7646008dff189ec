import { z } from 'zod'

export const TrainingMethod = z.enum(['lora', 'dora', 'qlora', 'qdora'])
export type TrainingMethod = z.infer<typeof TrainingMethod>

export const RunStatus = z.enum(['queued', 'running', 'paused', 'completed', 'failed', 'cancelled'])
export type RunStatus = z.infer<typeof RunStatus>

export const RunSummary = z.object({
  id: z.string(),
  name: z.string(),
  method: TrainingMethod,
  status: RunStatus,
  /** The base model's display name (repo id or folder name). */
  baseModel: z.string().nullable(),
  dataset: z.string().nullable(),
  createdAt: z.string(), // ISO 8601
  finishedAt: z.string().nullable(),
  steps: z.number().int().nonnegative(),
  lastLoss: z.number().nullable(),
  error: z.string().nullable(),
})
export type RunSummary = z.infer<typeof RunSummary>
