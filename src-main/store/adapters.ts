import { TrainingMethod } from '../contract/runs'
import { changedRow, checkEnum, fromJson, newId, nowIso, toJson, type Connection } from './sql'

/** An adapter in the library: trained by a run, or imported from a PEFT folder (then runId is null). */
export interface Adapter {
  id: string
  name: string
  runId: string | null
  /** The base model as PEFT names it (base_model_name_or_path): lineage that outlives the model row. */
  baseModel: string
  /** The base model in the model store, when it is there. */
  modelId: string | null
  path: string
  method: TrainingMethod
  rank: number
  alpha: number
  tags: string[]
  notes: string
  createdAt: string
}

export interface NewAdapter {
  name: string
  runId?: string | null
  baseModel: string
  modelId?: string | null
  path: string
  method: TrainingMethod
  rank: number
  alpha: number
  tags?: string[]
  notes?: string
}

/** What the library lets the user edit; fields left out keep their value. */
export type AdapterEdit = Partial<Pick<Adapter, 'name' | 'tags' | 'notes'>>

type AdapterRow = Omit<Adapter, 'tags'> & { tags: string }

const columns = `id, name, run_id AS runId, base_model AS baseModel, model_id AS modelId, path, method, rank, alpha,
  tags, notes, created_at AS createdAt`

function toAdapter(row: AdapterRow): Adapter {
  return { ...row, tags: fromJson(row.tags) as string[] }
}

function checkTags(tags: string[]): string {
  if (!tags.every((tag) => typeof tag === 'string')) throw new TypeError('tags must be strings')
  return toJson(tags, 'tags')
}

export function adaptersTable(connection: Connection) {
  const insert = connection.prepare<AdapterRow, AdapterRow>(
    `INSERT INTO adapters (id, name, run_id, base_model, model_id, path, method, rank, alpha, tags, notes, created_at)
     VALUES (@id, @name, @runId, @baseModel, @modelId, @path, @method, @rank, @alpha, @tags, @notes, @createdAt)
     RETURNING ${columns}`,
  )
  const byId = connection.prepare<[string], AdapterRow>(`SELECT ${columns} FROM adapters WHERE id = ?`)
  const all = connection.prepare<[], AdapterRow>(`SELECT ${columns} FROM adapters ORDER BY created_at DESC, rowid DESC`)
  // NULL means "leave as is": none of the editable columns can be NULL themselves.
  const edit = connection.prepare<{ id: string; name: string | null; tags: string | null; notes: string | null }, AdapterRow>(
    `UPDATE adapters SET name = coalesce(@name, name), tags = coalesce(@tags, tags), notes = coalesce(@notes, notes)
     WHERE id = @id
     RETURNING ${columns}`,
  )
  const remove = connection.prepare<[string]>('DELETE FROM adapters WHERE id = ?')

  return {
    addAdapter(adapter: NewAdapter): Adapter {
      return toAdapter(
        insert.get({
          id: newId(),
          name: adapter.name,
          runId: adapter.runId ?? null,
          baseModel: adapter.baseModel,
          modelId: adapter.modelId ?? null,
          path: adapter.path,
          method: checkEnum(TrainingMethod.options, adapter.method, 'method'),
          rank: adapter.rank,
          alpha: adapter.alpha,
          tags: checkTags(adapter.tags ?? []),
          notes: adapter.notes ?? '',
          createdAt: nowIso(),
        })!,
      )
    },

    getAdapter(id: string): Adapter | undefined {
      const row = byId.get(id)
      return row && toAdapter(row)
    },

    /** Newest first. */
    listAdapters: (): Adapter[] => all.all().map(toAdapter),

    updateAdapter(id: string, changes: AdapterEdit): Adapter | undefined {
      const row = edit.get({ id, name: changes.name ?? null, tags: changes.tags ? checkTags(changes.tags) : null, notes: changes.notes ?? null })
      return row && toAdapter(row)
    },

    /** Its export records go with it; chats that used it keep their transcript, unlinked. */
    deleteAdapter: (id: string): boolean => changedRow(remove.run(id)),
  }
}

export type AdaptersTable = ReturnType<typeof adaptersTable>
