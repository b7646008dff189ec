import Database from 'better-sqlite3'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { openDatabase } from '../../src-main/store/database'
import { StoreError, type StoreErrorCode } from '../../src-main/store/errors'
import { migrate, schemaVersion } from '../../src-main/store/migrate'
import { latestSchemaVersion, migrations } from '../../src-main/store/migrations'

let dir: string
let path: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'attune-store-'))
  path = join(dir, 'attune.db')
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

function storeErrorFrom(open: () => unknown, code: StoreErrorCode): StoreError {
  try {
    open()
  } catch (err) {
    expect(err).toBeInstanceOf(StoreError)
    expect((err as StoreError).code).toBe(code)
    return err as StoreError
  }
  throw new Error(`expected a ${code} StoreError`)
}

/** A database as an older Attune (or none) left it: the first `version` migrations, nothing else. */
function databaseAtVersion(version: number): Database.Database {
  const raw = new Database(path)
  migrate(raw, migrations.slice(0, version))
  return raw
}

function schemaOf(file: string): unknown[] {
  const raw = new Database(file, { readonly: true })
  try {
    return raw.prepare('SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name').all()
  } finally {
    raw.close()
  }
}

describe('opening', () => {
  it('numbers the migrations 1…n, each described', () => {
    expect(migrations.map((m) => m.version)).toEqual(migrations.map((_, i) => i + 1))
    expect(latestSchemaVersion).toBe(migrations.length)
    for (const m of migrations) expect(m.description.length).toBeGreaterThan(10)
  })

  it('gives a new database the latest schema, in WAL mode, with its connection settings', () => {
    const db = openDatabase(path)
    const pragma = (name: string) => db.connection.pragma(name, { simple: true })
    expect(pragma('user_version')).toBe(latestSchemaVersion)
    expect(pragma('journal_mode')).toBe('wal')
    expect(pragma('foreign_keys')).toBe(1)
    expect(pragma('synchronous')).toBe(1) // NORMAL
    expect(pragma('busy_timeout')).toBe(2000)
    const tables = db.connection.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all()
    expect(tables).toEqual(['adapters', 'chat_messages', 'chat_sessions', 'datasets', 'exports', 'models', 'run_metrics', 'runs', 'settings'])
    db.close()
  })

  it('keeps the data across a close and a reopen', () => {
    const first = openDatabase(path)
    const run = first.runs.createRun({ name: 'r', method: 'lora', config: {}, outDir: '/o' })
    first.close()
    const second = openDatabase(path)
    expect(second.runs.getRun(run.id)).toEqual(run)
    second.close()
  })

  it('leaves a database at the last migration that completed when one fails', () => {
    const raw = databaseAtVersion(latestSchemaVersion)
    const broken = { version: latestSchemaVersion + 1, description: 'a migration that fails halfway', up: 'CREATE TABLE half_done (a INTEGER); SELECT no_such_function();' }
    expect(() => migrate(raw, [...migrations, broken])).toThrow(/no_such_function/)
    expect(schemaVersion(raw)).toBe(latestSchemaVersion)
    expect(raw.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'").pluck().get()).toBe(0)
    raw.close()
  })
})

/** Rows as each schema version could hold them, written with that version's own SQL. */
const seeds: Record<number, string> = {
  1: `
    INSERT INTO models (id, repo_id, revision, path, display_name, architecture, size_bytes, quantization, hash, added_at)
      VALUES ('m1', 'Qwen/Qwen2.5-0.5B', 'main', '/home/models/qwen', 'Qwen2.5-0.5B', 'Qwen2ForCausalLM', 988000000, NULL, 'abc', '2025-01-01T00:00:00.000Z');
    INSERT INTO datasets (id, name, path, format, records, sha256, added_at)
      VALUES ('d1', 'support chats', '/home/datasets/s.jsonl', 'messages', 120, 'f00d', '2025-01-01T00:00:01.000Z');
    INSERT INTO runs (id, name, method, status, model_id, dataset_id, config, out_dir, created_at, started_at, finished_at, error)
      VALUES ('r1', 'first run', 'qlora', 'completed', 'm1', 'd1', '{"rank":16}', '/home/runs/r1', '2025-01-01T00:00:02.000Z', '2025-01-01T00:00:03.000Z', '2025-01-01T00:10:00.000Z', NULL);
    INSERT INTO run_metrics (run_id, step, loss, lr, grad_norm, tokens, tokens_per_s, elapsed_s, mem_bytes)
      VALUES ('r1', 1, 2.5, 0.0002, 1.1, 512, 900.5, 0.6, 1000), ('r1', 2, 1.75, 0.0002, 0.9, 1024, 950.0, 1.2, 1000);
    INSERT INTO adapters (id, name, run_id, base_model, model_id, path, method, rank, alpha, tags, notes, created_at)
      VALUES ('a1', 'support adapter', 'r1', 'Qwen/Qwen2.5-0.5B', 'm1', '/home/adapters/a1', 'qlora', 16, 32, '["support"]', 'good', '2025-01-01T00:10:01.000Z');
    INSERT INTO settings (key, value) VALUES ('theme', '"dark"');
  `,
  2: `
    INSERT INTO chat_sessions (id, title, model_id, adapter_id, created_at) VALUES ('c1', 'try it', 'm1', 'a1', '2025-01-02T00:00:00.000Z');
    INSERT INTO chat_messages (session_id, ordering, role, content, created_at)
      VALUES ('c1', 0, 'user', 'hello', '2025-01-02T00:00:01.000Z'), ('c1', 1, 'assistant', 'hi!', '2025-01-02T00:00:02.000Z');
    INSERT INTO exports (id, adapter_id, kind, path, gguf_type, status, error, created_at)
      VALUES ('e1', 'a1', 'gguf', '/home/exports/a1.gguf', 'q8_0', 'completed', NULL, '2025-01-02T00:01:00.000Z');
  `,
}

describe('upgrading', () => {
  it('has seed rows for every version before the latest', () => {
    for (let version = 1; version < latestSchemaVersion; version++) expect(seeds[version]).toBeDefined()
  })

  it.each(Array.from({ length: latestSchemaVersion }, (_, version) => version))('upgrades a database from version %i, keeping its rows', (from) => {
    const raw = databaseAtVersion(from)
    for (let version = 1; version <= from; version++) raw.exec(seeds[version]!)
    raw.close()

    const db = openDatabase(path)
    expect(db.connection.pragma('user_version', { simple: true })).toBe(latestSchemaVersion)
    const fresh = join(dir, 'fresh.db')
    openDatabase(fresh).close()
    expect(schemaOf(path)).toEqual(schemaOf(fresh))

    if (from >= 1) {
      expect(db.runs.listRuns()).toEqual([
        { id: 'r1', name: 'first run', method: 'qlora', status: 'completed', baseModel: 'Qwen2.5-0.5B', dataset: 'support chats', createdAt: '2025-01-01T00:00:02.000Z', finishedAt: '2025-01-01T00:10:00.000Z', steps: 2, lastLoss: 1.75, error: null },
      ])
      expect(db.runs.getRun('r1')).toMatchObject({ config: { rank: 16 }, lastCheckpointStep: null })
      expect(db.runs.listMetrics('r1').map((m) => m.evalLoss)).toEqual([null, null])
      expect(db.adapters.getAdapter('a1')).toMatchObject({ runId: 'r1', modelId: 'm1', tags: ['support'], rank: 16, alpha: 32 })
      expect(db.settings.getSetting('theme', z.string())).toBe('dark')
      // …and the columns the upgrade added take writes.
      expect(db.runs.recordCheckpoint('r1', 2)?.lastCheckpointStep).toBe(2)
    }
    if (from >= 2) {
      expect(db.chats.listChatMessages('c1').map((m) => [m.ordering, m.role, m.content])).toEqual([
        [0, 'user', 'hello'],
        [1, 'assistant', 'hi!'],
      ])
      expect(db.exports.listExports('a1')).toEqual([
        { id: 'e1', adapterId: 'a1', kind: 'gguf', path: '/home/exports/a1.gguf', ggufType: 'q8_0', status: 'completed', error: null, createdAt: '2025-01-02T00:01:00.000Z' },
      ])
    }
    db.close()
  })
})

describe('refusing a database it cannot use, untouched', () => {
  it('refuses a database written by a newer Attune', () => {
    openDatabase(path).close()
    const raw = new Database(path)
    raw.pragma('user_version = 7')
    raw.close()
    const before = readFileSync(path)

    const err = storeErrorFrom(() => openDatabase(path), 'DB_NEWER')
    expect(err.message).toBe(
      `${path} was written by a newer version of Attune (schema 7; this version knows up to ${latestSchemaVersion}). Update Attune, or point --home at another folder.`,
    )
    expect(readFileSync(path).equals(before)).toBe(true)
  })

  it('refuses a file that is not a database', () => {
    writeFileSync(path, randomBytes(64 * 1024))
    const before = readFileSync(path)
    const err = storeErrorFrom(() => openDatabase(path), 'DB_CORRUPT')
    expect(err.message).toContain(path)
    expect(err.message).toContain('left it untouched')
    expect(readFileSync(path).equals(before)).toBe(true)
  })

  it('refuses a database with a damaged page', () => {
    const db = openDatabase(path)
    const run = db.runs.createRun({ name: 'long run', method: 'lora', config: {}, outDir: '/o' })
    for (let step = 1; step <= 3000; step++) db.runs.appendMetric(run.id, { step, loss: 1, lr: 1e-4, gradNorm: 1, tokens: 512, tokensPerS: 1000, elapsedS: step, memBytes: 1 })
    db.close()
    expect(existsSync(`${path}-wal`)).toBe(false) // closing checkpointed everything into the file

    const raw = new Database(path, { readonly: true })
    const rootPage = raw.prepare("SELECT rootpage FROM sqlite_schema WHERE name = 'run_metrics'").pluck().get() as number
    const pageSize = raw.pragma('page_size', { simple: true }) as number
    raw.close()
    const damaged = readFileSync(path)
    damaged.fill(0xff, (rootPage - 1) * pageSize, rootPage * pageSize)
    writeFileSync(path, damaged)

    const err = storeErrorFrom(() => openDatabase(path), 'DB_CORRUPT')
    expect(err.message).toContain(path)
    expect(readFileSync(path).equals(damaged)).toBe(true)
  })
})

describe('a database locked by another writer', () => {
  it('reports a write transaction held by another process', async () => {
    openDatabase(path).close()
    const holder = await holdWriteLock(path)
    try {
      const started = Date.now()
      const err = storeErrorFrom(() => openDatabase(path), 'DB_LOCKED')
      expect(Date.now() - started).toBeGreaterThanOrEqual(1900) // it waited out the busy timeout first
      expect(err.message).toBe(
        `${path} is locked by another program that is writing to it (another Attune window, an attune command or a SQLite tool). Close that program and try again, or point --home at another folder.`,
      )
    } finally {
      await release(holder)
    }
    openDatabase(path).close()
  })

  it('reports an exclusive lock on an old database before upgrading it', () => {
    const raw = databaseAtVersion(1)
    raw.exec('BEGIN EXCLUSIVE')
    raw.exec("INSERT INTO settings (key, value) VALUES ('k', '1')")
    storeErrorFrom(() => openDatabase(path), 'DB_LOCKED')
    raw.exec('ROLLBACK')
    raw.close()
    const db = openDatabase(path)
    expect(db.connection.pragma('user_version', { simple: true })).toBe(latestSchemaVersion)
    db.close()
  })

  it('reports a lock met after opening the same way', () => {
    const db = openDatabase(path)
    const other = new Database(path)
    other.exec('BEGIN IMMEDIATE')
    const err = storeErrorFrom(() => db.runs.createRun({ name: 'r', method: 'lora', config: {}, outDir: '/o' }), 'DB_LOCKED')
    expect(err.cause).toMatchObject({ code: 'SQLITE_BUSY' })
    other.exec('ROLLBACK')
    other.close()
    db.close()
  })
})

describe('read-only and loading options', () => {
  it('opens a current database read-only, without writing', () => {
    openDatabase(path).close()
    const db = openDatabase(path, { readonly: true })
    expect(db.runs.listRuns()).toEqual([])
    expect(() => db.settings.setSetting('k', 1)).toThrow(/readonly/)
    db.close()
  })

  it('refuses read-only a database that is missing or needs upgrading', () => {
    storeErrorFrom(() => openDatabase(path, { readonly: true }), 'DB_UNREADABLE')
    expect(existsSync(path)).toBe(false)
    databaseAtVersion(1).close()
    const err = storeErrorFrom(() => openDatabase(path, { readonly: true }), 'DB_UNREADABLE')
    expect(err.message).toContain('older version of Attune (schema 1;')
  })

  it('says when the folder does not exist', () => {
    const err = storeErrorFrom(() => openDatabase(join(dir, 'missing', 'attune.db')), 'DB_UNREADABLE')
    expect(err.message).toContain('its folder does not exist')
  })

  it('loads the SQLite addon given, and names it with what to run when it will not load', () => {
    const addon = join(process.cwd(), 'node_modules/better-sqlite3/build/Release/better_sqlite3.node')
    openDatabase(path, { nativeBinding: addon }).close()

    const broken = join(dir, 'electron', 'better_sqlite3.node')
    const err = storeErrorFrom(() => openDatabase(path, { nativeBinding: broken }), 'DB_UNREADABLE')
    expect(err.message).toContain(broken)
    expect(err.message).toContain('Cannot find module')
    expect(err.message).toContain('npm start')
  })
})

/** Starts a separate process that holds a pending write transaction on `file` until released. */
async function holdWriteLock(file: string): Promise<ChildProcess> {
  const script = `
    const db = new (require('better-sqlite3'))(process.argv[1])
    db.exec('BEGIN IMMEDIATE')
    db.exec("INSERT INTO settings (key, value) VALUES ('held', 'true')")
    process.stdout.write('locked\\n')
    process.stdin.once('data', () => { db.exec('ROLLBACK'); db.close(); process.exit(0) })
  `
  const child = spawn(process.execPath, ['-e', script, file], { cwd: process.cwd(), stdio: ['pipe', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve())
    child.once('exit', (code) => reject(new Error(`lock holder exited early (${code})`)))
  })
  return child
}

async function release(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.stdin!.write('\n')
  await exited
}
