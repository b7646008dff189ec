// Checkpoints of a run: `<out>/checkpoints/step-<N>/` with the adapter's tensors, the optimizer's
// moments and the step reached. A folder appears whole or not at all (atomic folder write), so a
// half-written checkpoint is never taken for one; resuming from it continues bit for bit.
import { existsSync, readdirSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { ApiError } from '../../contract/errors'
import { tensorToFloat32 } from '../../domain/safetensors/convert'
import { readSafetensorsFile } from '../../domain/safetensors/read'
import { serializeSafetensors, type TensorToWrite } from '../../domain/safetensors/write'
import { writeFilesAtomic } from '../../services/atomic-file'
import type { NativeOptimizerState, NativeTensor, NativeTrainer } from '../addon'

const CheckpointState = z.object({
  format: z.literal(1),
  /** Optimizer steps completed. */
  step: z.number().int().positive(),
  /** The run's settings; a resume with other settings is refused. */
  settings: z.record(z.string(), z.unknown()),
})
type CheckpointState = z.infer<typeof CheckpointState>

const stepFolder = /^step-(\d+)$/

export function checkpointsDir(outDir: string): string {
  return join(outDir, 'checkpoints')
}

function f32(shape: readonly number[], data: Float32Array): TensorToWrite {
  return { dtype: 'F32', shape, data }
}

export async function saveCheckpoint(outDir: string, step: number, settings: Record<string, unknown>, trainer: NativeTrainer): Promise<void> {
  const params = new Map(trainer.parameters().map((p) => [p.name, f32(p.shape, p.data)]))
  const moments = new Map<string, TensorToWrite>()
  const shapes = new Map(trainer.parameters().map((p) => [p.name, p.shape]))
  const steps: Record<string, number> = {}
  for (const s of trainer.optimizerState()) {
    moments.set(`${s.name}.exp_avg`, f32(shapes.get(s.name)!, s.expAvg))
    moments.set(`${s.name}.exp_avg_sq`, f32(shapes.get(s.name)!, s.expAvgSq))
    steps[s.name] = s.step
  }
  const state: CheckpointState & { optimizerSteps: Record<string, number> } = { format: 1, step, settings, optimizerSteps: steps }
  await writeFilesAtomic(join(checkpointsDir(outDir), `step-${step}`), {
    'adapter_model.safetensors': serializeSafetensors(params, { format: 'pt' }),
    'optimizer.safetensors': serializeSafetensors(moments, { format: 'pt' }),
    'state.json': JSON.stringify(state, null, 2) + '\n',
  })
}

/** The highest complete checkpoint's step, or null when the run has none. */
export function latestCheckpoint(outDir: string): number | null {
  const dir = checkpointsDir(outDir)
  if (!existsSync(dir)) return null
  const steps = readdirSync(dir)
    .map((name) => stepFolder.exec(name))
    .filter((match): match is RegExpExecArray => match !== null && existsSync(join(dir, match[0], 'state.json')))
    .map((match) => Number(match[1]))
  return steps.length ? Math.max(...steps) : null
}

/** Names of the settings that differ between a checkpoint and this run. */
function changedSettings(saved: Record<string, unknown>, now: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(saved), ...Object.keys(now)])
  return [...keys].filter((key) => JSON.stringify(saved[key]) !== JSON.stringify(now[key])).sort()
}

/** Restores the trainer from `<out>/checkpoints/step-<step>`, refusing it when the settings changed. */
export async function restoreCheckpoint(outDir: string, step: number, settings: Record<string, unknown>, trainer: NativeTrainer): Promise<void> {
  const dir = join(checkpointsDir(outDir), `step-${step}`)
  const raw = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as unknown
  const parsed = CheckpointState.extend({ optimizerSteps: z.record(z.string(), z.number()) }).safeParse(raw)
  if (!parsed.success) throw new ApiError('USER_ERROR', `${dir}/state.json is not a checkpoint Attune wrote; delete the folder or train without --resume.`)
  const changed = changedSettings(parsed.data.settings, settings)
  if (changed.length) {
    throw new ApiError('USER_ERROR', `Cannot resume ${outDir}: these settings differ from the run's checkpoint: ${changed.join(', ')}. Use the same settings, or a new --out folder.`)
  }
  const params = await readSafetensorsFile(join(dir, 'adapter_model.safetensors'))
  const moments = await readSafetensorsFile(join(dir, 'optimizer.safetensors'))
  const current: NativeTensor[] = trainer.parameters()
  const states: NativeOptimizerState[] = []
  for (const p of current) {
    const value = params.tensors.get(p.name)
    const m = moments.tensors.get(`${p.name}.exp_avg`)
    const v = moments.tensors.get(`${p.name}.exp_avg_sq`)
    const optimizerStep = parsed.data.optimizerSteps[p.name]
    if (!value || !m || !v || optimizerStep === undefined) throw new ApiError('USER_ERROR', `Checkpoint ${dir} lacks ${p.name}; it does not belong to this run.`)
    trainer.setParameter(p.name, p.shape, tensorToFloat32(value, params.file))
    states.push({ name: p.name, step: optimizerStep, expAvg: tensorToFloat32(m, moments.file), expAvgSq: tensorToFloat32(v, moments.file) })
  }
  trainer.setOptimizerState(states)
}
