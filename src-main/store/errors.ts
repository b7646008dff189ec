/**
 * Why the experiment log could not be used, by what the user can do about it:
 * update Attune (DB_NEWER), restore or move the file (DB_CORRUPT), close the other program
 * (DB_LOCKED), or fix the folder, its permissions or the SQLite build (DB_UNREADABLE).
 */
export type StoreErrorCode = 'DB_NEWER' | 'DB_CORRUPT' | 'DB_LOCKED' | 'DB_UNREADABLE'

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    /** The database file the message is about. */
    readonly path: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.name = 'StoreError'
  }
}

const orElsewhere = 'or point --home at another folder'

/** The plain-words messages, in one place so the CLI, the server and the app all say the same. */
export const storeErrors = {
  newer: (path: string, found: number, known: number) =>
    new StoreError(
      'DB_NEWER',
      path,
      `${path} was written by a newer version of Attune (schema ${found}; this version knows up to ${known}). Update Attune, ${orElsewhere}.`,
    ),

  needsUpgrade: (path: string, found: number, known: number) =>
    new StoreError(
      'DB_UNREADABLE',
      path,
      `${path} was written by an older version of Attune (schema ${found}; this version uses ${known}) and cannot be upgraded when opened read-only. Open it once with Attune normally, ${orElsewhere}.`,
    ),

  corrupt: (path: string, detail: string, cause?: unknown) =>
    new StoreError(
      'DB_CORRUPT',
      path,
      `${path} is damaged and cannot be used as Attune's experiment log (${detail}). Attune has left it untouched: restore it from a backup, move it out of its folder so that Attune starts a new, empty log, ${orElsewhere}.`,
      { cause },
    ),

  locked: (path: string, cause?: unknown) =>
    new StoreError(
      'DB_LOCKED',
      path,
      `${path} is locked by another program that is writing to it (another Attune window, an attune command or a SQLite tool). Close that program and try again, ${orElsewhere}.`,
      { cause },
    ),

  unreadable: (path: string, detail: string, cause?: unknown) =>
    new StoreError(
      'DB_UNREADABLE',
      path,
      `Attune could not open ${path} (${detail}). Check that the folder exists and that you can read and write it, ${orElsewhere}.`,
      { cause },
    ),

  /** The better-sqlite3 addon itself failed to load: usually a build for another Node/Electron ABI. */
  nativeLibrary: (path: string, binding: string | undefined, cause: unknown) =>
    new StoreError(
      'DB_UNREADABLE',
      path,
      binding
        ? `Attune could not load its SQLite library ${binding} to open ${path} (${messageOf(cause)}). Run \`npm start\`, which rebuilds it for Electron.`
        : `Attune could not load its SQLite library (better-sqlite3) to open ${path} (${messageOf(cause)}). Run \`npm rebuild better-sqlite3\` to rebuild it for this version of Node.`,
      { cause },
    ),
}

/** better-sqlite3's SqliteError carries SQLite's result code as a string ('SQLITE_BUSY', …). */
export function sqliteCode(err: unknown): string | undefined {
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined
}

/**
 * A lock or damage found while the log is in use gets the same message as at open. Anything
 * else (a constraint, a bug) is not the user's to fix and is returned as it was.
 */
export function classifyInUse(err: unknown, path: string): unknown {
  const code = sqliteCode(err) ?? ''
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return storeErrors.locked(path, err)
  if (code === 'SQLITE_NOTADB') return storeErrors.corrupt(path, 'not a SQLite database', err)
  if (code.startsWith('SQLITE_CORRUPT')) return storeErrors.corrupt(path, messageOf(err), err)
  return err
}

/** While opening, every failure is a StoreError: the log cannot be used, whatever the reason. */
export function classifyAtOpen(err: unknown, path: string): StoreError {
  if (err instanceof StoreError) return err
  const classified = classifyInUse(err, path)
  return classified instanceof StoreError ? classified : storeErrors.unreadable(path, messageOf(err), err)
}

/** The first line only: Node's module errors append a require stack that means nothing to a user. */
function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!
}
