import { datasetFormats, type DatasetFormat } from '../domain/dataset/types'
import { changedRow, checkEnum, newId, nowIso, type Connection } from './sql'

export interface Dataset {
  id: string
  name: string
  path: string
  format: DatasetFormat
  records: number
  sha256: string
  addedAt: string
}

export type NewDataset = Omit<Dataset, 'id' | 'addedAt'>

// Aliased to the Dataset's field names, so a row read is already a Dataset.
const columns = 'id, name, path, format, records, sha256, added_at AS addedAt'

export function datasetsTable(connection: Connection) {
  const insert = connection.prepare<Dataset, Dataset>(
    `INSERT INTO datasets (id, name, path, format, records, sha256, added_at)
     VALUES (@id, @name, @path, @format, @records, @sha256, @addedAt)
     RETURNING ${columns}`,
  )
  const byId = connection.prepare<[string], Dataset>(`SELECT ${columns} FROM datasets WHERE id = ?`)
  const byPath = connection.prepare<[string], Dataset>(`SELECT ${columns} FROM datasets WHERE path = ? ORDER BY added_at DESC, rowid DESC LIMIT 1`)
  const all = connection.prepare<[], Dataset>(`SELECT ${columns} FROM datasets ORDER BY added_at DESC, rowid DESC`)
  const rename = connection.prepare<[string, string], Dataset>(`UPDATE datasets SET name = ? WHERE id = ? RETURNING ${columns}`)
  const remove = connection.prepare<[string]>('DELETE FROM datasets WHERE id = ?')

  return {
    addDataset(dataset: NewDataset): Dataset {
      return insert.get({ ...dataset, id: newId(), format: checkEnum(datasetFormats, dataset.format, 'format'), addedAt: nowIso() })!
    },
    getDataset: (id: string): Dataset | undefined => byId.get(id),
    /** The newest entry for a file; the caller compares sha256 to tell whether it changed since. */
    findDatasetByPath: (path: string): Dataset | undefined => byPath.get(path),
    /** Newest first. */
    listDatasets: (): Dataset[] => all.all(),
    renameDataset: (id: string, name: string): Dataset | undefined => rename.get(name, id),
    /** Runs that used it keep their history with the link set to null. */
    deleteDataset: (id: string): boolean => changedRow(remove.run(id)),
  }
}

export type DatasetsTable = ReturnType<typeof datasetsTable>
