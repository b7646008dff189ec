import { changedRow, checkEnum, newId, nowIso, type Connection } from './sql'

export const modelQuantizations = ['nf4'] as const
export type ModelQuantization = (typeof modelQuantizations)[number]

/** A base model in the model store: downloaded from the Hub, found on disk, or quantized by Attune. */
export interface Model {
  id: string
  repoId: string | null
  revision: string | null
  path: string
  displayName: string
  architecture: string | null
  sizeBytes: number
  quantization: ModelQuantization | null
  hash: string | null
  addedAt: string
}

export interface NewModel {
  path: string
  displayName: string
  sizeBytes: number
  repoId?: string | null
  revision?: string | null
  architecture?: string | null
  quantization?: ModelQuantization | null
  hash?: string | null
}

// Aliased to the Model's field names, so a row read is already a Model.
const columns = `id, repo_id AS repoId, revision, path, display_name AS displayName, architecture,
  size_bytes AS sizeBytes, quantization, hash, added_at AS addedAt`

export function modelsTable(connection: Connection) {
  const insert = connection.prepare<Model, Model>(
    `INSERT INTO models (id, repo_id, revision, path, display_name, architecture, size_bytes, quantization, hash, added_at)
     VALUES (@id, @repoId, @revision, @path, @displayName, @architecture, @sizeBytes, @quantization, @hash, @addedAt)
     RETURNING ${columns}`,
  )
  const byId = connection.prepare<[string], Model>(`SELECT ${columns} FROM models WHERE id = ?`)
  const byPath = connection.prepare<[string], Model>(`SELECT ${columns} FROM models WHERE path = ?`)
  const all = connection.prepare<[], Model>(`SELECT ${columns} FROM models ORDER BY added_at DESC, rowid DESC`)
  const rename = connection.prepare<[string, string], Model>(`UPDATE models SET display_name = ? WHERE id = ? RETURNING ${columns}`)
  const remove = connection.prepare<[string]>('DELETE FROM models WHERE id = ?')

  return {
    addModel(model: NewModel): Model {
      return insert.get({
        id: newId(),
        repoId: model.repoId ?? null,
        revision: model.revision ?? null,
        path: model.path,
        displayName: model.displayName,
        architecture: model.architecture ?? null,
        sizeBytes: model.sizeBytes,
        quantization: model.quantization == null ? null : checkEnum(modelQuantizations, model.quantization, 'quantization'),
        hash: model.hash ?? null,
        addedAt: nowIso(),
      })!
    },
    getModel: (id: string): Model | undefined => byId.get(id),
    /** A model folder is registered once; the CLI finds it again by its path. */
    findModelByPath: (path: string): Model | undefined => byPath.get(path),
    /** Newest first. */
    listModels: (): Model[] => all.all(),
    renameModel: (id: string, displayName: string): Model | undefined => rename.get(displayName, id),
    /** Runs, adapters and chats that used it keep their history with the link set to null. */
    deleteModel: (id: string): boolean => changedRow(remove.run(id)),
  }
}

export type ModelsTable = ReturnType<typeof modelsTable>
