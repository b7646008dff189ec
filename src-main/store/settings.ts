import type { ZodType } from 'zod'
import { changedRow, fromJson, toJson, type Connection } from './sql'

export function settingsTable(connection: Connection) {
  const byKey = connection.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?')
  const upsert = connection.prepare<[string, string]>('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
  const remove = connection.prepare<[string]>('DELETE FROM settings WHERE key = ?')

  return {
    /**
     * The value stored under `key`, checked against `schema`. A value of another shape (left by an
     * older version, or edited by hand) reads as unset, so the caller's default applies and
     * startup never fails on a setting.
     */
    getSetting<T>(key: string, schema: ZodType<T>): T | undefined {
      const row = byKey.get(key)
      if (!row) return undefined
      const parsed = schema.safeParse(fromJson(row.value))
      return parsed.success ? parsed.data : undefined
    },
    setSetting(key: string, value: unknown): void {
      upsert.run(key, toJson(value, `setting ${key}`))
    },
    deleteSetting: (key: string): boolean => changedRow(remove.run(key)),
  }
}

export type SettingsTable = ReturnType<typeof settingsTable>
