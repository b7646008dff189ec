import { RunStatus, TrainingMethod, type RunSummary } from '../contract/runs'
import { changedRow, checkEnum, fromJson, newId, nowIso, toJson, type Connection } from './sql'

/** A training run as the log keeps it; RunSummary is the list view the UI gets. */
export interface Run {
  id: string
  name: string
  method: TrainingMethod
  status: RunStatus
  modelId: string | null
  datasetId: string | null
  /** The training options as given (rank, lr, steps, …): JSON, for lineage and for resuming. */
  config: Record<string, unknown>
  outDir: string
  createdAt: string
  startedAt: string | null
  finishedAt: string | null
  error: string | null
  lastCheckpointStep: number | null
}

export interface NewRun {
  /** Chosen by the caller when the run's folder is named after it; a UUID otherwise. */
  id?: string
  name: string
  method: TrainingMethod
  modelId?: string | null
  datasetId?: string | null
  config: Record<string, unknown>
  outDir: string
}

/** One optimizer step, as the engine reports it (metrics.jsonl). NaN loss or grad norm reads back as null. */
export interface RunMetric {
  step: number
  loss: number | null
  lr: number
  gradNorm: number | null
  tokens: number
  tokensPerS: number
  elapsedS: number
  memBytes: number
  evalLoss: number | null
}

export type NewRunMetric = Omit<RunMetric, 'evalLoss'> & { evalLoss?: number | null }

/** A run that reaches one of these has finished: it gets a finished_at. */
const finishedStatuses: readonly RunStatus[] = ['completed', 'failed', 'cancelled']

type RunRow = Omit<Run, 'config'> & { config: string }
type RunInsert = Pick<RunRow, 'id' | 'name' | 'method' | 'modelId' | 'datasetId' | 'config' | 'outDir' | 'createdAt'>

const runColumns = `id, name, method, status, model_id AS modelId, dataset_id AS datasetId, config, out_dir AS outDir,
  created_at AS createdAt, started_at AS startedAt, finished_at AS finishedAt, error, last_checkpoint_step AS lastCheckpointStep`

const metricColumns = `step, loss, lr, grad_norm AS gradNorm, tokens, tokens_per_s AS tokensPerS, elapsed_s AS elapsedS,
  mem_bytes AS memBytes, eval_loss AS evalLoss`

function toRun(row: RunRow): Run {
  return { ...row, config: fromJson(row.config) as Record<string, unknown> }
}

export function runsTable(connection: Connection) {
  const insert = connection.prepare<RunInsert, RunRow>(
    `INSERT INTO runs (id, name, method, status, model_id, dataset_id, config, out_dir, created_at)
     VALUES (@id, @name, @method, 'queued', @modelId, @datasetId, @config, @outDir, @createdAt)
     RETURNING ${runColumns}`,
  )
  const byId = connection.prepare<[string], RunRow>(`SELECT ${runColumns} FROM runs WHERE id = ?`)
  // steps and lastLoss come from run_metrics through its (run_id, step) key: two index lookups per run.
  const summaries = connection.prepare<[number], RunSummary>(
    `SELECT r.id, r.name, r.method, r.status, m.display_name AS baseModel, d.name AS dataset,
       r.created_at AS createdAt, r.finished_at AS finishedAt,
       (SELECT count(*) FROM run_metrics WHERE run_id = r.id) AS steps,
       (SELECT loss FROM run_metrics WHERE run_id = r.id ORDER BY step DESC LIMIT 1) AS lastLoss,
       r.error
     FROM runs r
     LEFT JOIN models m ON m.id = r.model_id
     LEFT JOIN datasets d ON d.id = r.dataset_id
     ORDER BY r.created_at DESC, r.rowid DESC
     LIMIT ?`,
  )
  const setStatus = connection.prepare<{ id: string; status: RunStatus; finished: number; now: string; error: string | null }, RunRow>(
    // started_at is the first start (a resumed run keeps it); finished_at is cleared on resume.
    `UPDATE runs SET status = @status,
       started_at = CASE WHEN @status = 'running' THEN coalesce(started_at, @now) ELSE started_at END,
       finished_at = CASE WHEN @finished THEN @now END,
       error = @error
     WHERE id = @id
     RETURNING ${runColumns}`,
  )
  const setCheckpoint = connection.prepare<[number, string], RunRow>(`UPDATE runs SET last_checkpoint_step = ? WHERE id = ? RETURNING ${runColumns}`)
  const remove = connection.prepare<[string]>('DELETE FROM runs WHERE id = ?')
  // A resumed run replays the steps after its last checkpoint, bit for bit: the replay overwrites.
  const upsertMetric = connection.prepare<RunMetric & { runId: string }>(
    `INSERT OR REPLACE INTO run_metrics (run_id, step, loss, lr, grad_norm, tokens, tokens_per_s, elapsed_s, mem_bytes, eval_loss)
     VALUES (@runId, @step, @loss, @lr, @gradNorm, @tokens, @tokensPerS, @elapsedS, @memBytes, @evalLoss)`,
  )
  const metricsOf = connection.prepare<[string], RunMetric>(`SELECT ${metricColumns} FROM run_metrics WHERE run_id = ? ORDER BY step`)

  return {
    createRun(run: NewRun): Run {
      return toRun(
        insert.get({
          id: run.id ?? newId(),
          name: run.name,
          method: checkEnum(TrainingMethod.options, run.method, 'method'),
          modelId: run.modelId ?? null,
          datasetId: run.datasetId ?? null,
          config: toJson(run.config, 'config'),
          outDir: run.outDir,
          createdAt: nowIso(),
        })!,
      )
    },

    getRun(id: string): Run | undefined {
      const row = byId.get(id)
      return row && toRun(row)
    },

    /** Newest first; every run when no limit is given. */
    listRuns({ limit }: { limit?: number } = {}): RunSummary[] {
      if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) throw new RangeError(`limit must be a positive integer; got ${limit}`)
      return summaries.all(limit ?? -1)
    },

    /** Records a status change; `error` is kept only with this status (a resumed run loses it). */
    updateRunStatus(id: string, status: RunStatus, error: string | null = null): Run | undefined {
      const checked = checkEnum(RunStatus.options, status, 'status')
      const row = setStatus.get({ id, status: checked, finished: finishedStatuses.includes(checked) ? 1 : 0, now: nowIso(), error })
      return row && toRun(row)
    },

    /** The step of the newest complete checkpoint, which a resume continues from. */
    recordCheckpoint(id: string, step: number): Run | undefined {
      const row = setCheckpoint.get(step, id)
      return row && toRun(row)
    },

    /** Its metrics go with it; its adapters stay in the library, unlinked. */
    deleteRun: (id: string): boolean => changedRow(remove.run(id)),

    appendMetric(runId: string, metric: NewRunMetric): void {
      upsertMetric.run({ ...metric, runId, evalLoss: metric.evalLoss ?? null })
    },

    listMetrics: (runId: string): RunMetric[] => metricsOf.all(runId),
  }
}

export type RunsTable = ReturnType<typeof runsTable>
