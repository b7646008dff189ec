// The learning rate of each optimizer step, exactly as transformers' schedulers set it
// (optimization.py: get_constant_schedule_with_warmup, get_linear_schedule_with_warmup,
// get_cosine_schedule_with_warmup with num_cycles 0.5), which are torch LambdaLR schedules:
// lr(step) = lr · λ(step).
//
// `step` is the scheduler's index, 0-based: the first optimizer step runs with λ(0) — the
// Trainer calls scheduler.step() after each optimizer.step(), so the k-th step (k = 0, 1, …)
// uses λ(k). With warmup W > 0 the first step therefore runs at lr 0 (λ(0) = 0/W), and the
// rate reaches lr at step W. (The Trainer *logs* the rate after stepping the scheduler, i.e.
// λ(k+1) for step k; Attune's metrics.jsonl records the rate the step actually used.)
//
//   warmup (all three):  step < W  →  λ = step / max(1, W)
//   constant:            λ = 1
//   linear:              λ = max(0, (T − step) / max(1, T − W))
//   cosine:              p = (step − W) / max(1, T − W);  λ = max(0, ½ (1 + cos(π · 0.5 · 2 · p)))
//
// The arithmetic is done in the same order as Python's, in doubles, so the values agree with
// transformers' to the last bit (up to Math.cos versus the C library's cos).

import type { LrSchedule } from './config'

export interface ScheduleSettings {
  /** The peak learning rate (`--lr`). */
  lr: number
  lrSchedule: LrSchedule
  /** `--warmup-steps`. */
  warmupSteps: number
}

/** The multiplier λ(step) of the schedule (lr · λ is the rate). */
export function lrMultiplier(step: number, schedule: LrSchedule, warmupSteps: number, totalSteps: number): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps)
  switch (schedule) {
    case 'constant':
      return 1
    case 'linear':
      return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps))
    case 'cosine': {
      const numCycles = 0.5
      const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps)
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)))
    }
  }
}

/** The learning rate the optimizer step `step` (0-based) uses, in a run of `totalSteps` steps. */
export function learningRate(step: number, config: ScheduleSettings, totalSteps: number): number {
  return config.lr * lrMultiplier(step, config.lrSchedule, config.warmupSteps, totalSteps)
}
