import { migrations, type Migration } from './migrations'
import type { Connection } from './sql'

export function schemaVersion(connection: Connection): number {
  return connection.pragma('user_version', { simple: true }) as number
}

/**
 * Applies the migrations the database has not had yet, each in its own write transaction, so a
 * failure leaves it at the last version that completed. Tests pass a prefix of the list to build
 * a database as an older Attune left it.
 */
export function migrate(connection: Connection, list: readonly Migration[] = migrations): void {
  for (const migration of list) {
    // Checked without a lock first, so an up-to-date database is never write-locked for nothing…
    if (schemaVersion(connection) >= migration.version) continue
    connection
      .transaction(() => {
        // …and again under the lock: another process may have migrated in between.
        if (schemaVersion(connection) >= migration.version) return
        connection.exec(migration.up)
        connection.pragma(`user_version = ${migration.version}`)
      })
      .immediate()
  }
}
