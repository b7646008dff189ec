// Training options (cli.md, `attune train`): the defaults, the CLI's string values, and a
// message naming the flag for every bad value.
import { describe, expect, it } from 'vitest'
import { checkTrainingConfig, optionFlag, parseTargets, parseTrainingConfig, TrainingConfigError } from '../../src-main/domain/training/config'
import { planSteps, plannedStep } from '../../src-main/domain/training/plan'
import { learningRate } from '../../src-main/domain/training/schedule'
import { epochOrder } from '../../src-main/domain/training/shuffle'

function problems(input: unknown): string[] {
  const result = checkTrainingConfig(input)
  if (result.ok) throw new Error(`expected problems, got ${JSON.stringify(result.config)}`)
  return result.problems
}

describe('TrainingConfig', () => {
  it("has cli.md's defaults", () => {
    expect(parseTrainingConfig({ method: 'lora' })).toEqual({
      method: 'lora',
      rank: 16,
      alpha: 32,
      dropout: 0.05,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      rslora: false,
      lr: 2e-4,
      lrSchedule: 'cosine',
      warmupSteps: 0,
      weightDecay: 0,
      maxGradNorm: 1.0,
      epochs: 1,
      steps: null,
      batchSize: 1,
      gradAccum: 1,
      seqLen: 2048,
      seed: 42,
      shuffle: true,
      resume: false,
    })
  })

  it('takes the values the CLI passes as strings', () => {
    const config = parseTrainingConfig({
      method: 'qdora',
      rank: '8',
      alpha: '16',
      dropout: '0',
      targets: 'q,v,down',
      rslora: true,
      lr: '1e-3',
      lrSchedule: 'linear',
      warmupSteps: '10',
      weightDecay: '0.01',
      maxGradNorm: '0',
      steps: '500',
      batchSize: '4',
      gradAccum: '8',
      seqLen: '512',
      seed: '7',
      shuffle: false,
      initAdapter: '/tmp/adapter',
      evalData: 'eval.jsonl',
      checkpointEvery: '100',
      resume: 'true',
    })
    expect(config).toMatchObject({ rank: 8, alpha: 16, dropout: 0, targets: ['q_proj', 'v_proj', 'down_proj'], lr: 1e-3, maxGradNorm: 0, epochs: null, steps: 500, batchSize: 4, gradAccum: 8, seqLen: 512, seed: 7, shuffle: false, checkpointEvery: 100, resume: true })
    expect(parseTrainingConfig({ method: 'lora', epochs: 2.5 })).toMatchObject({ epochs: 2.5, steps: null })
  })

  it('names the flag in every message', () => {
    expect(problems({})).toEqual(['--method must be one of lora, dora, qlora, qdora (it is required)'])
    expect(problems({ method: 'full' })).toEqual(['--method must be one of lora, dora, qlora, qdora, not "full"'])
    expect(
      problems({
        method: 'lora',
        rank: 0,
        alpha: -1,
        dropout: 1,
        lr: 'fast',
        lrSchedule: 'step',
        warmupSteps: -1,
        weightDecay: -0.1,
        maxGradNorm: -1,
        batchSize: 1.5,
        gradAccum: 0,
        seqLen: 1,
        seed: -1,
        shuffle: 'no',
      }),
    ).toEqual([
      '--rank must be at least 1',
      '--alpha must be greater than 0',
      '--dropout must be less than 1',
      '--lr must be a number, not "fast"',
      '--lr-schedule must be one of cosine, linear, constant, not "step"',
      '--warmup-steps must be at least 0',
      '--weight-decay must be at least 0',
      '--max-grad-norm must be at least 0 (0 turns clipping off)',
      '--batch-size must be a whole number',
      '--grad-accum must be at least 1',
      '--seq-len must be at least 2 (a token and the next one to predict)',
      '--seed must be at least 0',
      '--shuffle is a switch (true or false), not "no"',
    ])
    expect(problems({ method: 'lora', epochs: 2, steps: 10 })).toEqual(['--epochs and --steps cannot be used together: give one of them'])
    expect(problems({ method: 'lora', steps: 0 })).toEqual(['--steps must be at least 1'])
    expect(problems({ method: 'lora', epochs: 0 })).toEqual(['--epochs must be greater than 0'])
    expect(problems({ method: 'lora', targets: 'q,lm_head' })).toEqual(['--targets: unknown module "lm_head" (use all-linear, or some of q,k,v,o,gate,up,down)'])
    expect(problems({ method: 'lora', targets: 3 })).toEqual(['--targets must be all-linear or a list like q,k,v, not 3'])
    expect(problems({ method: 'lora', learningRate: 1, max_steps: 3 })).toEqual(['unknown options --learning-rate, --max_steps'])
    expect(problems({ method: 'lora', rank: Infinity })).toEqual(['--rank must be a number, not null'])
    expect(problems({ method: 'lora', seed: 2 ** 60 })).toEqual(['--seed is too large'])
    expect(problems(null)).toEqual(['the training options must be an object of options'])
  })

  it('throws a TrainingConfigError listing the problems', () => {
    expect(() => parseTrainingConfig({ method: 'lora', rank: 'x' })).toThrow(TrainingConfigError)
    expect(() => parseTrainingConfig({ method: 'lora', rank: 'x', lr: 0 })).toThrow('--rank must be a number, not "x"; --lr must be greater than 0')
  })
})

describe('--targets', () => {
  it('takes all-linear, short names, module names, in any order', () => {
    expect(parseTargets('all-linear')).toHaveLength(7)
    expect(parseTargets('v, q')).toEqual(['q_proj', 'v_proj'])
    expect(parseTargets(['down_proj', 'gate', 'q', 'q'])).toEqual(['q_proj', 'gate_proj', 'down_proj'])
    expect(() => parseTargets('')).toThrow('--targets: unknown module ""')
    expect(() => parseTargets([])).toThrow('--targets names no module')
  })

  it('maps option keys to flags', () => {
    expect(optionFlag('lrSchedule')).toBe('--lr-schedule')
    expect(optionFlag('maxGradNorm')).toBe('--max-grad-norm')
    expect(optionFlag('rank')).toBe('--rank')
  })
})

describe('a parsed config drives the run plan', () => {
  it('feeds planSteps, learningRate and epochOrder as it is', () => {
    const config = parseTrainingConfig({ method: 'lora', batchSize: 2, gradAccum: 2, epochs: 2, warmupSteps: 1, lrSchedule: 'linear' })
    const plan = planSteps(9, config)
    expect(plan).toMatchObject({ batchesPerEpoch: 5, stepsPerEpoch: 3, totalSteps: 6, lastStepBatches: 1 })
    expect([0, 1, 5].map((step) => learningRate(step, config, plan.totalSteps))).toEqual([0, 2e-4, 2e-4 * (1 / 5)])
    const step = plannedStep(plan, 4)
    const order = epochOrder(plan.records, config, step.epoch)
    const records = step.batches.map(([start, end]) => [...order.subarray(start, end)])
    expect(records.flat()).toHaveLength(4)
    expect(new Set(records.flat()).size).toBe(4)
  })
})
