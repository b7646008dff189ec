// Counting optimizer steps as transformers' Trainer does (plan.ts): partial last micro-batch,
// partial last accumulation of an epoch, fractional epochs, --steps across epochs.
import { describe, expect, it } from 'vitest'
import { planSteps, plannedStep, plannedSteps, type PlanSettings } from '../../src-main/domain/training/plan'

const epochs = (n: number, batchSize = 1, gradAccum = 1): PlanSettings => ({ epochs: n, steps: null, batchSize, gradAccum })
const steps = (n: number, batchSize = 1, gradAccum = 1): PlanSettings => ({ epochs: null, steps: n, batchSize, gradAccum })

describe('planSteps', () => {
  it('one record a step by default', () => {
    expect(planSteps(10, epochs(1))).toEqual({
      records: 10,
      batchSize: 1,
      gradAccum: 1,
      batchesPerEpoch: 10,
      lastBatchSize: 1,
      stepsPerEpoch: 10,
      lastStepBatches: 1,
      totalSteps: 10,
      epochs: 1,
    })
  })

  it('steps per epoch = ceil(ceil(records / batch) / grad_accum), as the Trainer counts', () => {
    // [records, batch, accum] → [batches, last batch size, steps, last step's batches]
    const table: [number, number, number, number, number, number, number][] = [
      [10, 4, 1, 3, 2, 3, 1],
      [10, 4, 2, 3, 2, 2, 1], // the last step accumulates the one remaining micro-batch
      [10, 4, 3, 3, 2, 1, 3],
      [10, 4, 4, 3, 2, 1, 3], // fewer batches than grad_accum: one short step
      [12, 4, 3, 3, 4, 1, 3],
      [7, 1, 3, 7, 1, 3, 1],
      [1, 8, 4, 1, 1, 1, 1], // a single record
      [100, 3, 5, 34, 1, 7, 4],
    ]
    for (const [records, batch, accum, batches, lastBatch, stepsPerEpoch, lastStepBatches] of table) {
      const plan = planSteps(records, epochs(1, batch, accum))
      expect(plan, `${records} records, batch ${batch}, accum ${accum}`).toMatchObject({ batchesPerEpoch: batches, lastBatchSize: lastBatch, stepsPerEpoch, lastStepBatches, totalSteps: stepsPerEpoch })
    }
  })

  it('epochs: total = ceil(epochs × steps per epoch), fractional epochs stop part-way', () => {
    expect(planSteps(10, epochs(3, 4, 2))).toMatchObject({ stepsPerEpoch: 2, totalSteps: 6, epochs: 3 })
    expect(planSteps(10, epochs(0.5))).toMatchObject({ stepsPerEpoch: 10, totalSteps: 5, epochs: 1 })
    expect(planSteps(10, epochs(1.25))).toMatchObject({ totalSteps: 13, epochs: 2 })
    // Doubles as Python has them: 1.1 * 50 is 55.00000000000001, and the Trainer's math.ceil gives 56 too.
    expect(planSteps(50, epochs(1.1))).toMatchObject({ totalSteps: 56, epochs: 2 })
  })

  it('--steps: the data repeats for as many epochs as it takes', () => {
    expect(planSteps(10, steps(25, 2, 1))).toMatchObject({ stepsPerEpoch: 5, totalSteps: 25, epochs: 5 })
    expect(planSteps(10, steps(7, 2, 1))).toMatchObject({ totalSteps: 7, epochs: 2 })
    expect(planSteps(10, steps(3))).toMatchObject({ totalSteps: 3, epochs: 1 })
  })

  it('refuses impossible plans with the option at fault', () => {
    expect(() => planSteps(0, epochs(1))).toThrow('the dataset has no records to train on')
    expect(() => planSteps(10, epochs(0))).toThrow('--epochs must be greater than 0')
    expect(() => planSteps(10, { epochs: 1, steps: 5, batchSize: 1, gradAccum: 1 })).toThrow('--epochs and --steps cannot be used together')
    expect(() => planSteps(10, steps(0))).toThrow('--steps must be a whole number of at least 1')
    expect(() => planSteps(10, epochs(1, 0))).toThrow('--batch-size')
    expect(() => planSteps(10, epochs(1, 1, 1.5))).toThrow('--grad-accum')
  })
})

describe('plannedStep', () => {
  it('gives each step its micro-batches as positions in the epoch order', () => {
    const plan = planSteps(10, epochs(2, 4, 2))
    expect([...plannedSteps(plan)]).toEqual([
      { step: 0, epoch: 0, stepInEpoch: 0, batches: [[0, 4], [4, 8]] },
      { step: 1, epoch: 0, stepInEpoch: 1, batches: [[8, 10]] },
      { step: 2, epoch: 1, stepInEpoch: 0, batches: [[0, 4], [4, 8]] },
      { step: 3, epoch: 1, stepInEpoch: 1, batches: [[8, 10]] },
    ])
    expect([...plannedSteps(plan, 3)]).toHaveLength(1)
    expect(() => plannedStep(plan, 4)).toThrow('step 4 is not a step of this run (0–3)')
  })

  it('covers every record exactly once per full epoch, in order', () => {
    for (const [records, batch, accum] of [
      [1, 1, 1],
      [17, 3, 4],
      [64, 8, 8],
      [65, 8, 8],
      [5, 7, 2],
    ] as const) {
      const plan = planSteps(records, epochs(2, batch, accum))
      for (let epoch = 0; epoch < 2; epoch++) {
        const positions: number[] = []
        for (const step of plannedSteps(plan)) {
          if (step.epoch !== epoch) continue
          expect(step.batches.length).toBeGreaterThan(0)
          expect(step.batches.length).toBeLessThanOrEqual(accum)
          for (const [start, end] of step.batches) {
            expect(end - start).toBeGreaterThan(0)
            expect(end - start).toBeLessThanOrEqual(batch)
            for (let p = start; p < end; p++) positions.push(p)
          }
        }
        expect(positions).toEqual(Array.from({ length: records }, (_, i) => i))
      }
    }
  })
})
