import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { RunSummary } from '../../src-main/contract/runs'
import { openDatabase, type AttuneDatabase } from '../../src-main/store/database'
import type { NewModel } from '../../src-main/store/models'
import type { NewRunMetric } from '../../src-main/store/runs'

let dir: string
let db: AttuneDatabase
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'attune-store-'))
  db = openDatabase(join(dir, 'attune.db'))
})
afterEach(() => {
  db.close()
  rmSync(dir, { recursive: true, force: true })
})

const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
const qwen: NewModel = { repoId: 'Qwen/Qwen2.5-0.5B', revision: 'main', path: '/h/models/qwen', displayName: 'Qwen2.5-0.5B', architecture: 'Qwen2ForCausalLM', sizeBytes: 988_000_000, hash: 'abc' }
const metric = (step: number, loss: number): NewRunMetric => ({ step, loss, lr: 2e-4, gradNorm: 0.5, tokens: 512, tokensPerS: 1000, elapsedS: step, memBytes: 1 << 30 })

function library() {
  const model = db.models.addModel(qwen)
  const dataset = db.datasets.addDataset({ name: 'support chats', path: '/h/datasets/s.jsonl', format: 'messages', records: 120, sha256: 'f00d' })
  const run = db.runs.createRun({ name: 'first', method: 'qdora', modelId: model.id, datasetId: dataset.id, config: { rank: 16, lr: 2e-4 }, outDir: '/h/runs/1' })
  const adapter = db.adapters.addAdapter({ name: 'support', runId: run.id, baseModel: 'Qwen/Qwen2.5-0.5B', modelId: model.id, path: '/h/adapters/1', method: 'qdora', rank: 16, alpha: 32 })
  return { model, dataset, run, adapter }
}

describe('models', () => {
  it('round-trips, finds by path, renames and deletes', () => {
    const model = db.models.addModel(qwen)
    expect(model).toEqual({ ...qwen, id: expect.any(String), quantization: null, addedAt: expect.stringMatching(iso) })
    const quantized = db.models.addModel({ path: '/h/models/qwen-nf4', displayName: 'Qwen nf4', sizeBytes: 400, quantization: 'nf4' })
    expect(quantized).toMatchObject({ repoId: null, revision: null, architecture: null, hash: null, quantization: 'nf4' })
    expect(db.models.getModel(model.id)).toEqual(model)
    expect(db.models.findModelByPath('/h/models/qwen')).toEqual(model)
    expect(db.models.listModels().map((m) => m.id)).toEqual([quantized.id, model.id])
    expect(db.models.renameModel(model.id, 'My Qwen')?.displayName).toBe('My Qwen')
    expect(db.models.renameModel('nope', 'x')).toBeUndefined()
    expect(db.models.deleteModel(model.id)).toBe(true)
    expect(db.models.deleteModel(model.id)).toBe(false)
    expect(db.models.getModel(model.id)).toBeUndefined()
  })

  it('rejects an unknown quantization and a second entry for one folder', () => {
    expect(() => db.models.addModel({ ...qwen, quantization: 'int3' as 'nf4' })).toThrow(RangeError)
    db.models.addModel(qwen)
    expect(() => db.models.addModel(qwen)).toThrow(/UNIQUE/)
  })
})

describe('datasets', () => {
  it('round-trips, finds the newest entry for a file, renames and deletes', () => {
    const first = db.datasets.addDataset({ name: 'chats', path: '/h/d.jsonl', format: 'messages', records: 10, sha256: 'a' })
    const edited = db.datasets.addDataset({ name: 'chats v2', path: '/h/d.jsonl', format: 'messages', records: 12, sha256: 'b' })
    expect(db.datasets.getDataset(first.id)).toEqual({ id: first.id, name: 'chats', path: '/h/d.jsonl', format: 'messages', records: 10, sha256: 'a', addedAt: expect.stringMatching(iso) })
    expect(db.datasets.findDatasetByPath('/h/d.jsonl')).toEqual(edited)
    expect(db.datasets.listDatasets()).toEqual([edited, first])
    expect(db.datasets.renameDataset(first.id, 'old chats')?.name).toBe('old chats')
    expect(db.datasets.deleteDataset(first.id)).toBe(true)
    expect(db.datasets.listDatasets()).toEqual([edited])
    expect(() => db.datasets.addDataset({ name: 'x', path: '/x', format: 'parquet' as 'csv', records: 1, sha256: 'c' })).toThrow(/format must be one of/)
  })
})

describe('runs', () => {
  it('creates a queued run and round-trips its config', () => {
    const { model, dataset, run } = library()
    expect(run).toEqual({
      id: expect.any(String), name: 'first', method: 'qdora', status: 'queued', modelId: model.id, datasetId: dataset.id,
      config: { rank: 16, lr: 2e-4 }, outDir: '/h/runs/1', createdAt: expect.stringMatching(iso),
      startedAt: null, finishedAt: null, error: null, lastCheckpointStep: null,
    })
    expect(db.runs.getRun(run.id)).toEqual(run)
    expect(db.runs.createRun({ id: 'chosen-id', name: 'n', method: 'lora', config: {}, outDir: '/o' }).id).toBe('chosen-id')
    expect(db.runs.getRun('nope')).toBeUndefined()
  })

  it('stamps starts and finishes, and clears them when a failed run is resumed', () => {
    const { run } = library()
    const running = db.runs.updateRunStatus(run.id, 'running')!
    expect(running).toMatchObject({ status: 'running', startedAt: expect.stringMatching(iso), finishedAt: null })
    const failed = db.runs.updateRunStatus(run.id, 'failed', 'CUDA out of memory')!
    expect(failed).toMatchObject({ status: 'failed', startedAt: running.startedAt, finishedAt: expect.stringMatching(iso), error: 'CUDA out of memory' })
    expect(db.runs.recordCheckpoint(run.id, 40)?.lastCheckpointStep).toBe(40)
    const resumed = db.runs.updateRunStatus(run.id, 'running')!
    expect(resumed).toMatchObject({ startedAt: running.startedAt, finishedAt: null, error: null, lastCheckpointStep: 40 })
    expect(db.runs.updateRunStatus(run.id, 'completed')?.finishedAt).toMatch(iso)
    expect(db.runs.updateRunStatus('nope', 'running')).toBeUndefined()
  })

  it('checks method and status at the boundary', () => {
    expect(() => db.runs.createRun({ name: 'n', method: 'full' as 'lora', config: {}, outDir: '/o' })).toThrow(/method must be one of lora, dora, qlora, qdora/)
    const { run } = library()
    expect(() => db.runs.updateRunStatus(run.id, 'done' as 'completed')).toThrow(RangeError)
    expect(() => db.runs.listRuns({ limit: 0 })).toThrow(RangeError)
  })

  it('lists summaries newest first, with steps and last loss from the metrics', () => {
    const { run } = library()
    for (const [step, loss] of [[3, 1.25], [1, 2.5], [2, 1.5]] as const) db.runs.appendMetric(run.id, metric(step, loss))
    // A resumed run replays step 3 after its checkpoint: the replay replaces it.
    db.runs.appendMetric(run.id, { ...metric(3, 1.2), evalLoss: 1.4 })
    const bare = db.runs.createRun({ name: 'no model', method: 'lora', config: {}, outDir: '/o' })
    db.runs.updateRunStatus(bare.id, 'failed', 'dataset missing')

    const summaries = db.runs.listRuns()
    expect(summaries).toEqual([
      { id: bare.id, name: 'no model', method: 'lora', status: 'failed', baseModel: null, dataset: null, createdAt: bare.createdAt, finishedAt: expect.stringMatching(iso), steps: 0, lastLoss: null, error: 'dataset missing' },
      { id: run.id, name: 'first', method: 'qdora', status: 'queued', baseModel: 'Qwen2.5-0.5B', dataset: 'support chats', createdAt: run.createdAt, finishedAt: null, steps: 3, lastLoss: 1.2, error: null },
    ])
    for (const summary of summaries) expect(() => RunSummary.parse(summary)).not.toThrow()
    expect(db.runs.listRuns({ limit: 1 }).map((r) => r.id)).toEqual([bare.id])
    expect(db.runs.listMetrics(run.id)).toEqual([
      { ...metric(1, 2.5), evalLoss: null },
      { ...metric(2, 1.5), evalLoss: null },
      { ...metric(3, 1.2), evalLoss: 1.4 },
    ])
  })

  it('logs a diverged step, whose NaN loss reads back as null', () => {
    const { run } = library()
    db.runs.appendMetric(run.id, { ...metric(1, Number.NaN), gradNorm: Number.NaN })
    expect(db.runs.listMetrics(run.id)[0]).toMatchObject({ loss: null, gradNorm: null })
    expect(db.runs.listRuns()[0]).toMatchObject({ steps: 1, lastLoss: null })
  })
})

describe('adapters', () => {
  it('round-trips, edits the fields given and deletes', () => {
    const { run, model, adapter } = library()
    expect(adapter).toEqual({
      id: expect.any(String), name: 'support', runId: run.id, baseModel: 'Qwen/Qwen2.5-0.5B', modelId: model.id, path: '/h/adapters/1',
      method: 'qdora', rank: 16, alpha: 32, tags: [], notes: '', createdAt: expect.stringMatching(iso),
    })
    const imported = db.adapters.addAdapter({ name: 'from hub', baseModel: 'meta-llama/Llama-3.2-1B', path: '/h/adapters/2', method: 'lora', rank: 8, alpha: 16, tags: ['imported'] })
    expect(imported).toMatchObject({ runId: null, modelId: null, tags: ['imported'] })
    expect(db.adapters.listAdapters().map((a) => a.id)).toEqual([imported.id, adapter.id])
    expect(db.adapters.updateAdapter(adapter.id, { tags: ['support', 'v1'] })).toMatchObject({ name: 'support', tags: ['support', 'v1'], notes: '' })
    expect(db.adapters.updateAdapter(adapter.id, { notes: 'best so far', name: 'support v1' })).toMatchObject({ name: 'support v1', tags: ['support', 'v1'], notes: 'best so far' })
    expect(db.adapters.getAdapter(adapter.id)?.notes).toBe('best so far')
    expect(db.adapters.updateAdapter('nope', { name: 'x' })).toBeUndefined()
    expect(db.adapters.deleteAdapter(imported.id)).toBe(true)
    expect(db.adapters.getAdapter(imported.id)).toBeUndefined()
    expect(() => db.adapters.updateAdapter(adapter.id, { tags: [1] as unknown as string[] })).toThrow(/tags must be strings/)
  })
})

describe('chats', () => {
  it('keeps sessions and their messages in order', () => {
    const { model, adapter } = library()
    const session = db.chats.createChatSession({ title: 'try it', modelId: model.id, adapterId: adapter.id })
    expect(session).toEqual({ id: expect.any(String), title: 'try it', modelId: model.id, adapterId: adapter.id, createdAt: expect.stringMatching(iso) })
    const base = db.chats.createChatSession({ title: 'base only', modelId: model.id })
    expect(base.adapterId).toBeNull()
    expect(db.chats.listChatSessions().map((s) => s.id)).toEqual([base.id, session.id])

    db.chats.appendChatMessage(session.id, 'system', 'Be brief.')
    db.chats.appendChatMessage(session.id, 'user', 'hello')
    const reply = db.chats.appendChatMessage(session.id, 'assistant', 'hi!')
    expect(reply).toEqual({ id: expect.any(Number), sessionId: session.id, ordering: 2, role: 'assistant', content: 'hi!', createdAt: expect.stringMatching(iso) })
    expect(db.chats.appendChatMessage(base.id, 'user', 'other').ordering).toBe(0)
    expect(db.chats.listChatMessages(session.id).map((m) => [m.ordering, m.role])).toEqual([[0, 'system'], [1, 'user'], [2, 'assistant']])
    expect(() => db.chats.appendChatMessage(session.id, 'tool' as 'user', 'x')).toThrow(RangeError)

    expect(db.chats.renameChatSession(session.id, 'renamed')?.title).toBe('renamed')
    expect(db.chats.getChatSession(session.id)?.title).toBe('renamed')
    expect(db.chats.deleteChatSession(session.id)).toBe(true)
    expect(db.chats.listChatMessages(session.id)).toEqual([])
  })
})

describe('exports', () => {
  it('records an export as running, then its outcome', () => {
    const { adapter } = library()
    const gguf = db.exports.createExport({ adapterId: adapter.id, kind: 'gguf', path: '/h/exports/a.gguf', ggufType: 'q4_0' })
    expect(gguf).toEqual({ id: expect.any(String), adapterId: adapter.id, kind: 'gguf', path: '/h/exports/a.gguf', ggufType: 'q4_0', status: 'running', error: null, createdAt: expect.stringMatching(iso) })
    const peft = db.exports.createExport({ adapterId: adapter.id, kind: 'peft', path: '/h/exports/peft' })
    expect(db.exports.updateExportStatus(gguf.id, 'failed', 'disk full')).toMatchObject({ status: 'failed', error: 'disk full' })
    expect(db.exports.updateExportStatus(gguf.id, 'completed')).toMatchObject({ status: 'completed', error: null })
    expect(db.exports.getExport(gguf.id)?.status).toBe('completed')
    expect(db.exports.listExports(adapter.id).map((e) => e.id)).toEqual([peft.id, gguf.id])
    expect(db.exports.deleteExport(peft.id)).toBe(true)
    expect(() => db.exports.createExport({ adapterId: adapter.id, kind: 'onnx' as 'peft', path: '/x' })).toThrow(RangeError)
    expect(() => db.exports.createExport({ adapterId: adapter.id, kind: 'gguf', path: '/x', ggufType: 'q2_k' as 'q4_0' })).toThrow(RangeError)
    expect(() => db.exports.updateExportStatus(gguf.id, 'queued' as 'running')).toThrow(RangeError)
  })
})

describe('settings', () => {
  it('stores JSON values and reads them back through a schema', () => {
    const Window = z.object({ width: z.number(), height: z.number() })
    expect(db.settings.getSetting('window', Window)).toBeUndefined()
    db.settings.setSetting('window', { width: 1200, height: 800 })
    expect(db.settings.getSetting('window', Window)).toEqual({ width: 1200, height: 800 })
    db.settings.setSetting('window', { width: 1400, height: 900 })
    expect(db.settings.getSetting('window', Window)).toEqual({ width: 1400, height: 900 })
    // A value of another shape reads as unset, so the caller's default applies.
    db.settings.setSetting('device', 42)
    expect(db.settings.getSetting('device', z.enum(['auto', 'cpu', 'cuda']))).toBeUndefined()
    expect(db.settings.deleteSetting('window')).toBe(true)
    expect(db.settings.getSetting('window', Window)).toBeUndefined()
    expect(() => db.settings.setSetting('nothing', undefined)).toThrow(TypeError)
  })
})

describe('foreign keys', () => {
  it('keeps an adapter when its run is deleted, and drops the run’s metrics', () => {
    const { run, adapter } = library()
    db.runs.appendMetric(run.id, metric(1, 2))
    expect(db.runs.deleteRun(run.id)).toBe(true)
    expect(db.adapters.getAdapter(adapter.id)?.runId).toBeNull()
    expect(db.runs.listMetrics(run.id)).toEqual([])
  })

  it('keeps runs, adapters and chats when their model is deleted, with the lineage text', () => {
    const { model, run, adapter } = library()
    const session = db.chats.createChatSession({ title: 't', modelId: model.id })
    db.models.deleteModel(model.id)
    expect(db.runs.getRun(run.id)?.modelId).toBeNull()
    expect(db.runs.listRuns()[0]?.baseModel).toBeNull()
    expect(db.adapters.getAdapter(adapter.id)).toMatchObject({ modelId: null, baseModel: 'Qwen/Qwen2.5-0.5B' })
    expect(db.chats.getChatSession(session.id)?.modelId).toBeNull()
  })

  it('keeps runs when their dataset is deleted', () => {
    const { dataset, run } = library()
    db.datasets.deleteDataset(dataset.id)
    expect(db.runs.getRun(run.id)?.datasetId).toBeNull()
  })

  it('drops an adapter’s exports with it, and unlinks its chats', () => {
    const { model, adapter } = library()
    const exported = db.exports.createExport({ adapterId: adapter.id, kind: 'merged', path: '/h/exports/m' })
    const session = db.chats.createChatSession({ title: 't', modelId: model.id, adapterId: adapter.id })
    db.adapters.deleteAdapter(adapter.id)
    expect(db.exports.getExport(exported.id)).toBeUndefined()
    expect(db.chats.getChatSession(session.id)?.adapterId).toBeNull()
  })

  it('refuses a link to a row that does not exist', () => {
    expect(() => db.runs.createRun({ name: 'n', method: 'lora', modelId: 'no-such-model', config: {}, outDir: '/o' })).toThrow(/FOREIGN KEY/)
    expect(() => db.runs.appendMetric('no-such-run', metric(1, 1))).toThrow(/FOREIGN KEY/)
  })
})
