// The options of a training run (cli.md, `attune train`), with the CLI's defaults, the same in the
// app. Keys are the flags in camelCase (`--lr-schedule` → lrSchedule); every validation message
// names the flag. Numbers may come as numbers or as the CLI's strings ("2e-4"); `--no-shuffle` is
// shuffle: false. The model, data and output folders are the command's business, not this one's.

import { z } from 'zod'
import { sortTargets } from '../adapter/config'
import { targetModules, type TargetModule } from '../adapter/names'

export const trainingMethods = ['lora', 'dora', 'qlora', 'qdora'] as const
export type TrainingMethodName = (typeof trainingMethods)[number]

export const lrSchedules = ['cosine', 'linear', 'constant'] as const
export type LrSchedule = (typeof lrSchedules)[number]

/** `--targets` short names (cli.md) and the modules they stand for. */
export const targetShortNames: Readonly<Record<string, TargetModule>> = {
  q: 'q_proj',
  k: 'k_proj',
  v: 'v_proj',
  o: 'o_proj',
  gate: 'gate_proj',
  up: 'up_proj',
  down: 'down_proj',
}

/** The flag of an option key: rank → --rank, lrSchedule → --lr-schedule. */
export function optionFlag(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
}

const show = (value: unknown) => {
  const text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value))
  return text.length > 40 ? `${text.slice(0, 37)}…` : text
}

const numberText = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i

/** A number, or a string holding exactly one (as the CLI passes them). */
function numeric(flag: string) {
  return z.preprocess(
    (value) => (typeof value === 'string' && numberText.test(value.trim()) ? Number(value.trim()) : value),
    z.number({ error: (issue) => `${flag} must be a number, not ${show(issue.input)}` }),
  )
}

function wholeNumber(flag: string, min: number, why = '') {
  return numeric(flag).pipe(
    z
      .number()
      .refine(Number.isInteger, `${flag} must be a whole number`)
      .min(min, `${flag} must be at least ${min}${why}`)
      .max(Number.MAX_SAFE_INTEGER, `${flag} is too large`),
  )
}

function flagBoolean(flag: string) {
  return z.preprocess(
    (value) => (value === 'true' ? true : value === 'false' ? false : value),
    z.boolean({ error: (issue) => `${flag} is a switch (true or false), not ${show(issue.input)}` }),
  )
}

/** `--targets`: "all-linear", "q,k,v,o,gate,up,down" (short or full module names), or a list. */
export function parseTargets(value: string | readonly string[]): TargetModule[] {
  const names = typeof value === 'string' ? (value.trim() === 'all-linear' ? ['all-linear'] : value.split(',')) : [...value]
  const modules: TargetModule[] = []
  for (const raw of names) {
    const name = raw.trim()
    if (name === 'all-linear') modules.push(...targetModules)
    else if (targetShortNames[name]) modules.push(targetShortNames[name]!)
    else if ((targetModules as readonly string[]).includes(name)) modules.push(name as TargetModule)
    else throw new Error(`--targets: unknown module ${show(name)} (use all-linear, or some of q,k,v,o,gate,up,down)`)
  }
  if (modules.length === 0) throw new Error('--targets names no module (use all-linear, or some of q,k,v,o,gate,up,down)')
  return sortTargets(modules)
}

const targetsSchema = z
  .union([z.string(), z.array(z.string())], { error: (issue) => `--targets must be all-linear or a list like q,k,v, not ${show(issue.input)}` })
  .transform((value, context) => {
    try {
      return parseTargets(value)
    } catch (error) {
      context.addIssue({ code: 'custom', message: (error as Error).message })
      return z.NEVER
    }
  })

const trainingOptions = z.strictObject(
  {
    method: z.enum(trainingMethods, { error: (issue) => `--method must be one of ${trainingMethods.join(', ')}${issue.input === undefined ? ' (it is required)' : `, not ${show(issue.input)}`}` }),
    rank: wholeNumber('--rank', 1).default(16),
    alpha: numeric('--alpha').pipe(z.number().positive('--alpha must be greater than 0')).default(32),
    dropout: numeric('--dropout').pipe(z.number().min(0, '--dropout must be at least 0').lt(1, '--dropout must be less than 1')).default(0.05),
    targets: targetsSchema.default([...targetModules]),
    rslora: flagBoolean('--rslora').default(false),
    lr: numeric('--lr').pipe(z.number().positive('--lr must be greater than 0')).default(2e-4),
    lrSchedule: z.enum(lrSchedules, { error: (issue) => `--lr-schedule must be one of ${lrSchedules.join(', ')}, not ${show(issue.input)}` }).default('cosine'),
    warmupSteps: wholeNumber('--warmup-steps', 0).default(0),
    weightDecay: numeric('--weight-decay').pipe(z.number().min(0, '--weight-decay must be at least 0')).default(0),
    /** 0 turns gradient clipping off. */
    maxGradNorm: numeric('--max-grad-norm').pipe(z.number().min(0, '--max-grad-norm must be at least 0 (0 turns clipping off)')).default(1.0),
    /** Passes over the data; fractional values stop part-way, as transformers' Trainer does. */
    epochs: numeric('--epochs').pipe(z.number().positive('--epochs must be greater than 0')).optional(),
    /** Optimizer steps in all, instead of --epochs. */
    steps: wholeNumber('--steps', 1).optional(),
    batchSize: wholeNumber('--batch-size', 1).default(1),
    gradAccum: wholeNumber('--grad-accum', 1).default(1),
    seqLen: wholeNumber('--seq-len', 2, ' (a token and the next one to predict)').default(2048),
    seed: wholeNumber('--seed', 0).default(42),
    /** false with `--no-shuffle`: records in file order. */
    shuffle: flagBoolean('--shuffle').default(true),
    initAdapter: z.string({ error: '--init-adapter must be a folder path' }).min(1, '--init-adapter must be a folder path').optional(),
    evalData: z.string({ error: '--eval-data must be a file path' }).min(1, '--eval-data must be a file path').optional(),
    checkpointEvery: wholeNumber('--checkpoint-every', 1).optional(),
    resume: flagBoolean('--resume').default(false),
  },
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown option${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map(optionFlag).join(', ')}`
        : issue.code === 'invalid_type'
          ? 'the training options must be an object of options'
          : undefined,
  },
)

/** The options as given: everything but --method may be left out. */
export type TrainingOptionsInput = z.input<typeof trainingOptions>

export const TrainingConfig = trainingOptions
  .superRefine((options, context) => {
    if (options.epochs !== undefined && options.steps !== undefined) {
      context.addIssue({ code: 'custom', path: ['steps'], message: '--epochs and --steps cannot be used together: give one of them' })
    }
  })
  .transform(({ epochs, steps, ...options }) => ({
    ...options,
    /** Passes over the data; null when --steps fixes the length instead. */
    epochs: steps === undefined ? (epochs ?? 1) : null,
    /** --steps; null when the run is measured in epochs. */
    steps: steps ?? null,
  }))
export type TrainingConfig = z.output<typeof TrainingConfig>

export class TrainingConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '))
    this.name = 'TrainingConfigError'
  }
}

/** Validates training options and fills in the defaults; throws TrainingConfigError naming every bad flag. */
export function parseTrainingConfig(input: unknown): TrainingConfig {
  const result = TrainingConfig.safeParse(input)
  if (result.success) return result.data
  throw new TrainingConfigError([...new Set(result.error.issues.map((issue) => issue.message))])
}

/** The same, returning the problems instead of throwing. */
export function checkTrainingConfig(input: unknown): { ok: true; config: TrainingConfig } | { ok: false; problems: string[] } {
  try {
    return { ok: true, config: parseTrainingConfig(input) }
  } catch (error) {
    if (error instanceof TrainingConfigError) return { ok: false, problems: error.problems }
    throw error
  }
}
