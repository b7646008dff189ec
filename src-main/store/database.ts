import Database from 'better-sqlite3'
import { existsSync } from 'node:fs'
import { dirname } from 'node:path'
import { adaptersTable, type AdaptersTable } from './adapters'
import { chatsTable, type ChatsTable } from './chats'
import { datasetsTable, type DatasetsTable } from './datasets'
import { classifyAtOpen, classifyInUse, sqliteCode, storeErrors } from './errors'
import { exportsTable, type ExportsTable } from './exports'
import { migrate, schemaVersion } from './migrate'
import { latestSchemaVersion } from './migrations'
import { modelsTable, type ModelsTable } from './models'
import { runsTable, type RunsTable } from './runs'
import { settingsTable, type SettingsTable } from './settings'
import type { Connection } from './sql'

/** How long a statement waits for another process's write lock before the log reports DB_LOCKED. */
const busyTimeoutMs = 2000

export interface OpenOptions {
  /** A better-sqlite3 addon built for this runtime: the Electron app's ABI is not Node's. */
  nativeBinding?: string
  /** Open without migrating or writing anything; the schema must already be this version's. */
  readonly?: boolean
}

/** The experiment log: one module per table group, on one connection. */
export interface AttuneDatabase {
  readonly path: string
  /** The raw handle, for a transaction that spans modules or a backup; the modules are the usual way in. */
  readonly connection: Connection
  readonly models: ModelsTable
  readonly datasets: DatasetsTable
  readonly runs: RunsTable
  readonly adapters: AdaptersTable
  readonly chats: ChatsTable
  readonly exports: ExportsTable
  readonly settings: SettingsTable
  close(): void
}

/**
 * Opens (creating if needed) and upgrades the log at `path`. Throws StoreError when it cannot be
 * used: newer than this app, damaged, locked by another writer, or unreadable. A database that is
 * refused is left exactly as it was.
 */
export function openDatabase(path: string, options: OpenOptions = {}): AttuneDatabase {
  const readonly = options.readonly === true
  if (readonly || existsSync(path)) {
    // Look before touching, through a read-only connection: it cannot roll back, checkpoint or
    // rewrite anything, so a database refused here keeps every byte.
    const version = inspect(path, options.nativeBinding)
    if (readonly && version < latestSchemaVersion) throw storeErrors.needsUpgrade(path, version, latestSchemaVersion)
  }
  const connection = connect(path, readonly, options.nativeBinding)
  try {
    connection.pragma('foreign_keys = ON')
    if (!readonly) prepareForWriting(connection)
    return withTables(path, connection)
  } catch (err) {
    connection.close()
    throw classifyAtOpen(err, path)
  }
}

function connect(path: string, readonly: boolean, nativeBinding: string | undefined): Connection {
  // better-sqlite3 reports a missing folder as a bare TypeError; say it plainly, and so know
  // that any other non-SQLite error from the constructor is the addon failing to load.
  if (!existsSync(dirname(path))) throw storeErrors.unreadable(path, 'its folder does not exist')
  try {
    return new Database(path, { readonly, fileMustExist: readonly, timeout: busyTimeoutMs, nativeBinding })
  } catch (err) {
    throw sqliteCode(err) ? classifyAtOpen(err, path) : storeErrors.nativeLibrary(path, nativeBinding, err)
  }
}

/** The schema version of an existing file, once it is known to be a sound database this app can read. */
function inspect(path: string, nativeBinding: string | undefined): number {
  const connection = connect(path, true, nativeBinding)
  try {
    const version = schemaVersion(connection)
    if (version > latestSchemaVersion) throw storeErrors.newer(path, version, latestSchemaVersion)
    // quick_check reads every page (O(size), well under a second for a log) but skips the
    // index-content cross-checks of integrity_check.
    const [first] = connection.pragma('quick_check') as { quick_check: string }[]
    if (first?.quick_check !== 'ok') throw storeErrors.corrupt(path, first?.quick_check ?? 'quick_check gave no answer')
    return version
  } catch (err) {
    throw classifyAtOpen(err, path)
  } finally {
    connection.close()
  }
}

function prepareForWriting(connection: Connection): void {
  // WAL: the UI reads while a run appends metrics. NORMAL is durable across app crashes in WAL
  // mode; only a power cut can lose the last few commits, never corrupt the file.
  connection.pragma('journal_mode = WAL')
  connection.pragma('synchronous = NORMAL')
  migrate(connection)
  // Take and release the write lock once, so a database held by another writer is reported now,
  // in one clear message, rather than at the first metric of a training run.
  connection.transaction(() => {}).immediate()
}

function withTables(path: string, connection: Connection): AttuneDatabase {
  return {
    path,
    connection,
    models: reportingPlainly(path, modelsTable(connection)),
    datasets: reportingPlainly(path, datasetsTable(connection)),
    runs: reportingPlainly(path, runsTable(connection)),
    adapters: reportingPlainly(path, adaptersTable(connection)),
    chats: reportingPlainly(path, chatsTable(connection)),
    exports: reportingPlainly(path, exportsTable(connection)),
    settings: reportingPlainly(path, settingsTable(connection)),
    close: () => void connection.close(),
  }
}

/** Wraps a table module so a lock or damage met later gets the same StoreError as at open. */
function reportingPlainly<T extends object>(path: string, table: T): T {
  const wrapped = Object.entries(table).map(([name, fn]: [string, (...args: unknown[]) => unknown]) => [
    name,
    (...args: unknown[]) => {
      try {
        return fn(...args)
      } catch (err) {
        throw classifyInUse(err, path)
      }
    },
  ])
  return Object.fromEntries(wrapped) as T
}
