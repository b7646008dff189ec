// Writing a file, or a whole folder, so that a crash, a full disk (ENOSPC) or a concurrent writer
// never leaves a half-written file or folder where a good one was.
//
// A file is written to a temporary sibling (`.<name>.attune-tmp-<pid>-<random>`), flushed to
// disk (fsync), then renamed over the target, and the parent folder is fsynced so the rename
// itself survives a power cut. rename(2) replaces the target atomically: a reader sees the old
// bytes or the new ones, never a mix, and any failure before the rename leaves the old file
// untouched.
//
// A folder is written the same way into a temporary sibling folder. Folders cannot be swapped
// atomically with rename(2) when the target exists, so the old folder is first renamed aside
// (`.<name>.attune-old-<pid>-<random>`), the new one renamed into place, and the old one removed.
// Between those two renames the target is briefly absent; a crash exactly there leaves the old
// folder under its `-old-` name, and the next write to the same target (or
// cleanAtomicLeftovers) renames it back, so the previous version is never lost. A new folder
// that did not exist before (a checkpoint) appears in one rename: it is complete or absent.
//
// Leftovers of a crash (`.<name>.attune-tmp-…` / `.attune-old-…`) are recognisable by name. They
// are cleaned by the next write to the same target, or by cleanAtomicLeftovers(folder): a
// leftover counts as stale when the process that made it is gone, when it is this process's and
// no write of this process uses it, or when nothing in it changed for an hour (a pid reused
// after a reboot).
//
// Writers of one process to one target are serialised; writers in several processes retry the
// folder swap until their rename wins, so the target always ends as one writer's complete set.

import { randomBytes } from 'node:crypto'
import { lstat, mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises'
import { basename, dirname, isAbsolute, join, normalize, resolve, sep } from 'node:path'

export type FileData = Uint8Array | string

export interface AtomicWriteOptions {
  /**
   * Writes `data` into the freshly created temporary file. Tests replace it to simulate a full
   * disk or a crash part-way; the default writes everything (`FileHandle.writeFile`).
   */
  writeData?: (handle: FileHandle, data: Uint8Array, tempPath: string) => Promise<void>
  /** fsync files and folders (default true). Only tests of unrelated code should turn it off. */
  fsync?: boolean
  /** File mode of new files (default 0o666, less the umask). */
  mode?: number
}

/** A name made by these writers for their temporary and set-aside copies. */
const leftoverPattern = /^\.(.+)\.attune-(tmp|old)-(\d+)-([0-9a-f]{12})$/

/** Leftovers untouched for this long count as stale even when their pid is alive again. */
export const staleAfterMs = 60 * 60 * 1000

/** Paths of temporary and set-aside copies that a write of this process is using now. */
const activePaths = new Set<string>()
/** Per-target queue, so that two writes of this process to one target never interleave. */
const queues = new Map<string, Promise<unknown>>()

export interface AtomicLeftover {
  /** The leftover's name in its folder. */
  name: string
  /** The name of the file or folder it was a copy of. */
  target: string
  kind: 'tmp' | 'old'
  pid: number
}

/** Parses a leftover's name; null for any other name. */
export function parseAtomicLeftover(name: string): AtomicLeftover | null {
  const match = leftoverPattern.exec(name)
  if (!match) return null
  return { name, target: match[1]!, kind: match[2] as 'tmp' | 'old', pid: Number(match[3]) }
}

/**
 * Writes `data` to `path` atomically (see the top of this file). The parent folder is created
 * when missing. On any failure the previous file, if there was one, is left as it was and the
 * temporary file is removed.
 */
export async function writeFileAtomic(path: string, data: FileData, options: AtomicWriteOptions = {}): Promise<void> {
  const target = resolve(path)
  const parent = dirname(target)
  await ensureFolder(parent, options)
  await serialised(target, async () => {
    await cleanLeftoversOf(parent, basename(target))
    const temp = join(parent, leftoverName(basename(target), 'tmp'))
    activePaths.add(temp)
    try {
      await writeNewFile(temp, toBytes(data), options)
      await renameWithRetry(temp, target)
      if (options.fsync !== false) await fsyncFolder(parent)
    } catch (error) {
      await rm(temp, { force: true }).catch(() => undefined)
      throw error
    } finally {
      activePaths.delete(temp)
    }
  })
}

/**
 * Writes a whole folder atomically: afterwards `dir` holds exactly `files` (relative paths,
 * `/`-separated subfolders allowed) and nothing else. A crash or a failed write leaves the
 * previous folder, if there was one, complete (see the top of this file).
 */
export async function writeFilesAtomic(dir: string, files: Record<string, FileData>, options: AtomicWriteOptions = {}): Promise<void> {
  const target = resolve(dir)
  const parent = dirname(target)
  const name = basename(target)
  const entries = Object.entries(files).map(([relative, data]) => [checkRelativePath(relative), data] as const)
  await ensureFolder(parent, options)
  await serialised(target, async () => {
    await cleanLeftoversOf(parent, name)
    const temp = join(parent, leftoverName(name, 'tmp'))
    activePaths.add(temp)
    try {
      await mkdir(temp)
      const folders = new Set<string>([temp])
      for (const [relative, data] of entries) {
        const file = join(temp, relative)
        const folder = dirname(file)
        if (!folders.has(folder)) {
          await mkdir(folder, { recursive: true })
          for (let f = folder; f !== temp && !folders.has(f); f = dirname(f)) folders.add(f)
        }
        await writeNewFile(file, toBytes(data), options)
      }
      if (options.fsync !== false) {
        // Deepest first, so every folder's entries are durable before the folder holding it.
        for (const folder of [...folders].sort((a, b) => b.length - a.length)) await fsyncFolder(folder)
      }
      await swapFolderIn(temp, target, parent, name)
      if (options.fsync !== false) await fsyncFolder(parent)
    } catch (error) {
      await rm(temp, { recursive: true, force: true }).catch(() => undefined)
      throw error
    } finally {
      activePaths.delete(temp)
    }
  })
}

/** Writes one file into the folder being filled (see fillFolderAtomic), synced. */
export type FolderFileWriter = (relative: string, data: FileData) => Promise<void>

/**
 * writeFilesAtomic for a folder whose content is produced along the way, some of it by another
 * writer (the native engine streaming gigabytes of weights): `fill` gets the temporary sibling
 * folder and a writer for files of its own, and may write anything into the folder, each file
 * synced by whoever writes it. When `fill` resolves, the folder is synced and swapped in as
 * writeFilesAtomic does; when it throws (or the swap fails), the temporary folder is removed and
 * the target left as it was. Resolves with what `fill` resolved with.
 */
export async function fillFolderAtomic<T>(
  dir: string,
  fill: (tempDir: string, writeFile: FolderFileWriter) => Promise<T>,
  options: AtomicWriteOptions = {},
): Promise<T> {
  const target = resolve(dir)
  const parent = dirname(target)
  const name = basename(target)
  await ensureFolder(parent, options)
  return serialised(target, async () => {
    await cleanLeftoversOf(parent, name)
    const temp = join(parent, leftoverName(name, 'tmp'))
    activePaths.add(temp)
    try {
      await mkdir(temp)
      const folders = new Set<string>([temp])
      const writeFile: FolderFileWriter = async (relative, data) => {
        const file = join(temp, checkRelativePath(relative))
        const folder = dirname(file)
        if (!folders.has(folder)) {
          await mkdir(folder, { recursive: true })
          for (let f = folder; f !== temp && !folders.has(f); f = dirname(f)) folders.add(f)
        }
        await writeNewFile(file, toBytes(data), options)
      }
      const value = await fill(temp, writeFile)
      if (options.fsync !== false) {
        for (const folder of [...folders].sort((a, b) => b.length - a.length)) await fsyncFolder(folder)
      }
      await swapFolderIn(temp, target, parent, name)
      if (options.fsync !== false) await fsyncFolder(parent)
      return value
    } catch (error) {
      await rm(temp, { recursive: true, force: true }).catch(() => undefined)
      throw error
    } finally {
      activePaths.delete(temp)
    }
  })
}

/**
 * Cleans the stale leftovers of interrupted writes in `folder` (all targets): removes temporary
 * copies, and puts a set-aside previous folder back where its target is missing (removing it
 * otherwise). Returns what it did. Leftovers of writes still running are left alone.
 */
export async function cleanAtomicLeftovers(folder: string): Promise<{ removed: string[]; restored: string[] }> {
  return cleanLeftovers(resolve(folder), () => true)
}

// ---------------------------------------------------------------------------------------------

/** Creates `folder` when missing; with fsync, makes each new folder's entry durable in its parent. */
async function ensureFolder(folder: string, options: AtomicWriteOptions): Promise<void> {
  const first = await mkdir(folder, { recursive: true })
  if (first === undefined || options.fsync === false) return
  for (let f = folder; ; f = dirname(f)) {
    await fsyncFolder(dirname(f))
    if (f === first || dirname(f) === f) break
  }
}

function leftoverName(name: string, kind: 'tmp' | 'old'): string {
  return `.${name}.attune-${kind}-${process.pid}-${randomBytes(6).toString('hex')}`
}

function toBytes(data: FileData): Uint8Array {
  return typeof data === 'string' ? new TextEncoder().encode(data) : data
}

function checkRelativePath(relative: string): string {
  const path = normalize(relative)
  if (relative === '' || isAbsolute(relative) || path === '.' || path.split(sep).includes('..') || path.split(/[\\/]/).includes('..')) {
    throw new Error(`writeFilesAtomic: "${relative}" is not a path inside the folder`)
  }
  return path
}

async function serialised<T>(key: string, task: () => Promise<T>): Promise<T> {
  const before = queues.get(key) ?? Promise.resolve()
  const run = before.then(task, task)
  const settled = run.then(
    () => undefined,
    () => undefined,
  )
  queues.set(key, settled)
  try {
    return await run
  } finally {
    if (queues.get(key) === settled) queues.delete(key)
  }
}

async function defaultWriteData(handle: FileHandle, data: Uint8Array): Promise<void> {
  await handle.writeFile(data)
}

async function writeNewFile(path: string, data: Uint8Array, options: AtomicWriteOptions): Promise<void> {
  const handle = await open(path, 'wx', options.mode ?? 0o666)
  try {
    await (options.writeData ?? defaultWriteData)(handle, data, path)
    if (options.fsync !== false) await handle.sync()
  } finally {
    await handle.close()
  }
}

/** fsync a folder so renames and new entries in it are durable. Windows cannot open folders. */
async function fsyncFolder(folder: string): Promise<void> {
  if (process.platform === 'win32') return
  const handle = await open(folder, 'r')
  try {
    await handle.sync()
  } catch (error) {
    // Some file systems (and some FUSE mounts) refuse fsync on a folder; the data files
    // themselves are already synced.
    if (!isCode(error, 'EINVAL', 'ENOTSUP', 'EISDIR', 'EPERM')) throw error
  } finally {
    await handle.close()
  }
}

/** rename(2), retried briefly where Windows refuses it while another process has the file open. */
async function renameWithRetry(from: string, to: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await rename(from, to)
      return
    } catch (error) {
      if (process.platform !== 'win32' || attempt >= 20 || !isCode(error, 'EPERM', 'EACCES', 'EBUSY')) throw error
      await sleep(10 + attempt * 10)
    }
  }
}

async function swapFolderIn(temp: string, target: string, parent: string, name: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      // Succeeds at once when the target does not exist (or, on POSIX, is an empty folder).
      await rename(temp, target)
      return
    } catch (error) {
      if (!(await exists(target))) {
        if (isCode(error, 'ENOTEMPTY', 'EEXIST', 'EPERM', 'EACCES', 'EBUSY')) continue // it vanished meanwhile: retry
        throw error
      }
      if (!isCode(error, 'ENOTEMPTY', 'EEXIST', 'EPERM', 'EACCES', 'EBUSY', 'ENOTDIR', 'EISDIR')) throw error
    }
    const old = join(parent, leftoverName(name, 'old'))
    activePaths.add(old)
    try {
      try {
        await renameWithRetry(target, old)
      } catch (error) {
        if (isCode(error, 'ENOENT')) continue // another process moved it first: try again
        throw error
      }
      try {
        await rename(temp, target)
      } catch (error) {
        // Someone else's folder took the place first (another process), or the rename failed:
        // put the previous folder back, unless the place is taken by a newer one already.
        await rename(old, target).catch(() => rm(old, { recursive: true, force: true }).catch(() => undefined))
        if (isCode(error, 'ENOTEMPTY', 'EEXIST', 'EPERM', 'EACCES', 'EBUSY')) continue
        throw error
      }
      await rm(old, { recursive: true, force: true }).catch(() => undefined)
      return
    } finally {
      activePaths.delete(old)
    }
  }
  throw new Error(`writeFilesAtomic: could not put the new ${target} in place: other writers kept replacing it`)
}

async function cleanLeftoversOf(parent: string, name: string): Promise<void> {
  await cleanLeftovers(parent, (leftover) => leftover.target === name).catch(() => undefined)
}

async function cleanLeftovers(parent: string, wanted: (leftover: AtomicLeftover) => boolean): Promise<{ removed: string[]; restored: string[] }> {
  const removed: string[] = []
  const restored: string[] = []
  let names: string[]
  try {
    names = await readdir(parent)
  } catch (error) {
    if (isCode(error, 'ENOENT')) return { removed, restored }
    throw error
  }
  const leftovers = names.map(parseAtomicLeftover).filter((leftover): leftover is AtomicLeftover => leftover !== null && wanted(leftover))
  // Set-aside previous folders first: one may have to go back in place.
  leftovers.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'old' ? -1 : 1))
  for (const leftover of leftovers) {
    const path = join(parent, leftover.name)
    if (!(await isStale(path, leftover))) continue
    const target = join(parent, leftover.target)
    if (leftover.kind === 'old' && !(await exists(target))) {
      try {
        await rename(path, target)
        restored.push(leftover.name)
        continue
      } catch {
        // The target appeared meanwhile: this copy is then outdated.
      }
    }
    await rm(path, { recursive: true, force: true })
    removed.push(leftover.name)
  }
  return { removed, restored }
}

async function isStale(path: string, leftover: AtomicLeftover): Promise<boolean> {
  if (activePaths.has(path)) return false
  if (leftover.pid === process.pid || !processAlive(leftover.pid)) return true
  return Date.now() - (await newestChange(path)) > staleAfterMs
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return isCode(error, 'EPERM') // alive, but another user's
  }
}

/** The latest modification time of a leftover file, or of a leftover folder and its entries. */
async function newestChange(path: string): Promise<number> {
  try {
    const stats = await lstat(path)
    let newest = stats.mtimeMs
    if (stats.isDirectory()) {
      for (const entry of await readdir(path)) {
        const child = await lstat(join(path, entry)).catch(() => null)
        if (child) newest = Math.max(newest, child.mtimeMs)
      }
    }
    return newest
  } catch {
    return Date.now()
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path)
    return true
  } catch {
    return false
  }
}

function isCode(error: unknown, ...codes: string[]): boolean {
  return typeof error === 'object' && error !== null && codes.includes((error as NodeJS.ErrnoException).code ?? '')
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms))
}
