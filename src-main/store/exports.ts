import { changedRow, checkEnum, newId, nowIso, type Connection } from './sql'

/** The targets of `attune export --to` (cli.md). */
export const exportKinds = ['peft', 'merged', 'gguf', 'gguf-lora', 'ollama'] as const
export type ExportKind = (typeof exportKinds)[number]

export const ggufTypes = ['f16', 'bf16', 'q8_0', 'q4_0'] as const
export type GgufType = (typeof ggufTypes)[number]

export const exportStatuses = ['running', 'completed', 'failed'] as const
export type ExportStatus = (typeof exportStatuses)[number]

export interface AdapterExport {
  id: string
  adapterId: string
  kind: ExportKind
  path: string
  /** The tensor type of a GGUF export; null for the other kinds. */
  ggufType: GgufType | null
  status: ExportStatus
  error: string | null
  createdAt: string
}

export interface NewAdapterExport {
  adapterId: string
  kind: ExportKind
  path: string
  ggufType?: GgufType | null
}

const columns = 'id, adapter_id AS adapterId, kind, path, gguf_type AS ggufType, status, error, created_at AS createdAt'

export function exportsTable(connection: Connection) {
  // An export is recorded when it starts, so one cut short by a crash shows as still running.
  const insert = connection.prepare<Omit<AdapterExport, 'status' | 'error'>, AdapterExport>(
    `INSERT INTO exports (id, adapter_id, kind, path, gguf_type, status, created_at)
     VALUES (@id, @adapterId, @kind, @path, @ggufType, 'running', @createdAt)
     RETURNING ${columns}`,
  )
  const byId = connection.prepare<[string], AdapterExport>(`SELECT ${columns} FROM exports WHERE id = ?`)
  const ofAdapter = connection.prepare<[string], AdapterExport>(`SELECT ${columns} FROM exports WHERE adapter_id = ? ORDER BY created_at DESC, rowid DESC`)
  const setStatus = connection.prepare<[ExportStatus, string | null, string], AdapterExport>(
    `UPDATE exports SET status = ?, error = ? WHERE id = ? RETURNING ${columns}`,
  )
  const remove = connection.prepare<[string]>('DELETE FROM exports WHERE id = ?')

  return {
    createExport(entry: NewAdapterExport): AdapterExport {
      return insert.get({
        id: newId(),
        adapterId: entry.adapterId,
        kind: checkEnum(exportKinds, entry.kind, 'kind'),
        path: entry.path,
        ggufType: entry.ggufType == null ? null : checkEnum(ggufTypes, entry.ggufType, 'ggufType'),
        createdAt: nowIso(),
      })!
    },
    getExport: (id: string): AdapterExport | undefined => byId.get(id),
    /** An adapter's exports, newest first. */
    listExports: (adapterId: string): AdapterExport[] => ofAdapter.all(adapterId),
    /** `error` is kept only with this status. */
    updateExportStatus: (id: string, status: ExportStatus, error: string | null = null): AdapterExport | undefined =>
      setStatus.get(checkEnum(exportStatuses, status, 'status'), error, id),
    deleteExport: (id: string): boolean => changedRow(remove.run(id)),
  }
}

export type ExportsTable = ReturnType<typeof exportsTable>
