// How many optimizer steps a run takes and which micro-batches make each one, as transformers'
// Trainer (5.x) counts them:
//
// - micro-batches per epoch = ceil(records / batch_size): the last one may be smaller (the
//   Trainer's DataLoader keeps a partial last batch: drop_last is false);
// - optimizer steps per epoch = ceil(micro-batches / grad_accum): when the epoch does not divide
//   evenly, its last optimizer step accumulates only the remaining micro-batches (the Trainer's
//   `remainder`) rather than borrowing from the next epoch or dropping them. Its loss is still
//   the sum of target-token losses over those micro-batches divided by their target tokens
//   (cli.md), so a short step is not down-weighted. Accumulation never spans two epochs;
// - total steps = --steps, or ceil(epochs × steps per epoch) (fractional epochs stop part-way);
//   with --steps the data is repeated, reshuffled, for as many epochs as it takes, and the run
//   stops after the N-th step, maybe mid-epoch. The learning-rate schedule runs over the total.

export interface PlanSettings {
  batchSize: number
  gradAccum: number
  /** Passes over the data, or null when `steps` is given. */
  epochs: number | null
  /** Optimizer steps in all, or null when `epochs` is given. */
  steps: number | null
}

export interface StepPlan {
  records: number
  batchSize: number
  gradAccum: number
  /** Micro-batches in one pass over the data: ceil(records / batchSize). */
  batchesPerEpoch: number
  /** Records in an epoch's last micro-batch (batchSize when they divide evenly). */
  lastBatchSize: number
  /** Optimizer steps in one pass over the data: ceil(batchesPerEpoch / gradAccum). */
  stepsPerEpoch: number
  /** Micro-batches in an epoch's last optimizer step (gradAccum when they divide evenly). */
  lastStepBatches: number
  /** Optimizer steps in the whole run; the learning-rate schedule spans these. */
  totalSteps: number
  /** Epochs the run starts: ceil(totalSteps / stepsPerEpoch); the last may be cut short. */
  epochs: number
}

/** One optimizer step: which records of which epoch's order it trains on, micro-batch by micro-batch. */
export interface PlannedStep {
  /** 0-based optimizer step of the run. */
  step: number
  /** 0-based epoch. */
  epoch: number
  /** 0-based optimizer step within the epoch. */
  stepInEpoch: number
  /** Each micro-batch as [start, end) positions in the epoch's record order. */
  batches: [number, number][]
}

export function planSteps(records: number, config: PlanSettings): StepPlan {
  if (!Number.isSafeInteger(records) || records < 1) throw new RangeError('the dataset has no records to train on')
  const { batchSize, gradAccum } = config
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError('--batch-size must be a whole number of at least 1')
  if (!Number.isSafeInteger(gradAccum) || gradAccum < 1) throw new RangeError('--grad-accum must be a whole number of at least 1')
  const batchesPerEpoch = Math.ceil(records / batchSize)
  const stepsPerEpoch = Math.ceil(batchesPerEpoch / gradAccum)
  let totalSteps: number
  if (config.steps !== null) {
    if (config.epochs !== null) throw new RangeError('--epochs and --steps cannot be used together: give one of them')
    if (!Number.isSafeInteger(config.steps) || config.steps < 1) throw new RangeError('--steps must be a whole number of at least 1')
    totalSteps = config.steps
  } else {
    if (config.epochs === null || !(config.epochs > 0) || !Number.isFinite(config.epochs)) throw new RangeError('--epochs must be greater than 0')
    totalSteps = Math.ceil(config.epochs * stepsPerEpoch) // math.ceil(args.num_train_epochs * num_update_steps_per_epoch)
  }
  return {
    records,
    batchSize,
    gradAccum,
    batchesPerEpoch,
    lastBatchSize: records - (batchesPerEpoch - 1) * batchSize,
    stepsPerEpoch,
    lastStepBatches: batchesPerEpoch - (stepsPerEpoch - 1) * gradAccum,
    totalSteps,
    epochs: Math.ceil(totalSteps / stepsPerEpoch),
  }
}

/** The micro-batches of optimizer step `step` (0-based) of a plan. */
export function plannedStep(plan: StepPlan, step: number): PlannedStep {
  if (!Number.isSafeInteger(step) || step < 0 || step >= plan.totalSteps) throw new RangeError(`step ${step} is not a step of this run (0–${plan.totalSteps - 1})`)
  const epoch = Math.floor(step / plan.stepsPerEpoch)
  const stepInEpoch = step - epoch * plan.stepsPerEpoch
  const firstBatch = stepInEpoch * plan.gradAccum
  const count = Math.min(plan.gradAccum, plan.batchesPerEpoch - firstBatch)
  const batches: [number, number][] = []
  for (let b = firstBatch; b < firstBatch + count; b++) batches.push([b * plan.batchSize, Math.min(plan.records, (b + 1) * plan.batchSize)])
  return { step, epoch, stepInEpoch, batches }
}

/** Every optimizer step of the plan, in order (from `fromStep`, to resume a run). */
export function* plannedSteps(plan: StepPlan, fromStep = 0): Generator<PlannedStep> {
  for (let step = fromStep; step < plan.totalSteps; step++) yield plannedStep(plan, step)
}
