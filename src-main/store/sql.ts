// What the table modules share: the handle type, ids, timestamps, JSON columns, enum checks.
import type BetterSqlite3 from 'better-sqlite3'
import { randomUUID } from 'node:crypto'

/** An open better-sqlite3 handle; each table module prepares its statements on it once. */
export type Connection = BetterSqlite3.Database

/** ISO-8601 UTC with milliseconds: as text it sorts in time order, and any SQLite tool can read it. */
export function nowIso(): string {
  return new Date().toISOString()
}

/** UUIDs: unique across machines and safe as folder names (runs/<id>/, adapters/<id>/). */
export function newId(): string {
  return randomUUID()
}

/** Free-form columns (a run's config, an adapter's tags, settings) are JSON text, checked by json_valid. */
export function toJson(value: unknown, field: string): string {
  const text = JSON.stringify(value) as string | undefined
  if (text === undefined) throw new TypeError(`${field} must be a JSON value`)
  return text
}

export function fromJson(text: string): unknown {
  return JSON.parse(text)
}

/**
 * Enum-like columns are checked here, at the boundary, rather than by SQL CHECKs: adding a value
 * later (a new export kind) then needs no table rebuild.
 */
export function checkEnum<T extends string>(allowed: readonly T[], value: string, field: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T
  throw new RangeError(`${field} must be one of ${allowed.join(', ')}; got ${JSON.stringify(value)}`)
}

/** Updates and deletes report whether the row existed. */
export function changedRow(result: BetterSqlite3.RunResult): boolean {
  return result.changes > 0
}
