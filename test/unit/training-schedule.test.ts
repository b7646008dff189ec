// The learning-rate schedules against transformers' own numbers: test/fixtures/peft/schedules.json
// holds, for each case, the rate torch's optimizer had at every optimizer step under
// get_constant_schedule_with_warmup / get_linear_schedule_with_warmup /
// get_cosine_schedule_with_warmup (made by test/fixtures/peft/make_fixtures.py).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { LrSchedule } from '../../src-main/domain/training/config'
import { learningRate, lrMultiplier } from '../../src-main/domain/training/schedule'

interface Case {
  schedule: LrSchedule
  transformers: string
  lr: number
  warmup: number
  total: number
  lrs: number[]
}
const { cases } = JSON.parse(readFileSync(join(process.cwd(), 'test', 'fixtures', 'peft', 'schedules.json'), 'utf8')) as { cases: Case[] }

describe('learning-rate schedules match transformers', () => {
  it('has every schedule in the fixture', () => {
    expect(new Set(cases.map((c) => c.schedule))).toEqual(new Set(['constant', 'linear', 'cosine']))
  })

  it.each(cases.map((c) => [`${c.schedule}, lr ${c.lr}, warmup ${c.warmup}, ${c.total} steps`, c] as const))('%s', (_label, c) => {
    expect(c.lrs).toHaveLength(c.total)
    const ours = c.lrs.map((_, step) => learningRate(step, { lr: c.lr, lrSchedule: c.schedule, warmupSteps: c.warmup }, c.total))
    for (let step = 0; step < c.total; step++) {
      // Identical doubles, up to one rounding of Math.cos against the C library's cos.
      expect(Math.abs(ours[step]! - c.lrs[step]!), `step ${step}: ${ours[step]} vs ${c.lrs[step]}`).toBeLessThanOrEqual(2 ** -52 * c.lr)
    }
    const exact = ours.filter((value, step) => value === c.lrs[step]).length
    if (c.schedule !== 'cosine') expect(exact).toBe(c.total)
  })
})

describe('the off-by-one', () => {
  it('runs the first optimizer step at λ(0): lr 0 with warmup, the full lr without', () => {
    expect(learningRate(0, { lr: 2e-4, lrSchedule: 'cosine', warmupSteps: 10 }, 100)).toBe(0)
    expect(learningRate(10, { lr: 2e-4, lrSchedule: 'cosine', warmupSteps: 10 }, 100)).toBe(2e-4)
    expect(learningRate(0, { lr: 2e-4, lrSchedule: 'linear', warmupSteps: 0 }, 100)).toBe(2e-4)
    expect(learningRate(99, { lr: 2e-4, lrSchedule: 'linear', warmupSteps: 0 }, 100)).toBeCloseTo(2e-6, 18)
    expect(lrMultiplier(50, 'cosine', 0, 100)).toBeCloseTo(0.5, 15)
    expect(lrMultiplier(100, 'linear', 0, 100)).toBe(0)
    expect(lrMultiplier(5, 'constant', 0, 10)).toBe(1)
  })
})
