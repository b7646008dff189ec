/**
 * The schema's history. A migration is never edited once released: a change is a new entry.
 * Versions run 1, 2, … in order; the database's version is `PRAGMA user_version`.
 *
 * Conventions: STRICT tables; ids are TEXT (UUIDs) except chat messages; timestamps are ISO-8601
 * UTC text; JSON columns are TEXT checked by json_valid; enum-like columns are checked in the
 * table modules (see sql.ts checkEnum).
 */
export interface Migration {
  version: number
  description: string
  up: string
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    description: 'The experiment log: models, datasets, runs and their metrics, adapters, settings',
    up: `
      CREATE TABLE models (
        id           TEXT PRIMARY KEY,
        repo_id      TEXT,             -- Hugging Face repo id; null for a folder added from disk
        revision     TEXT,
        path         TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        architecture TEXT,
        size_bytes   INTEGER NOT NULL CHECK (size_bytes >= 0),
        quantization TEXT,             -- 'nf4' for a 4-bit checkpoint; null at full precision
        hash         TEXT,             -- identifies the exact weights, for lineage
        added_at     TEXT NOT NULL
      ) STRICT;

      CREATE TABLE datasets (
        id       TEXT PRIMARY KEY,
        name     TEXT NOT NULL,
        path     TEXT NOT NULL,
        format   TEXT NOT NULL,
        records  INTEGER NOT NULL CHECK (records >= 0),
        sha256   TEXT NOT NULL,
        added_at TEXT NOT NULL
      ) STRICT;

      -- Deleting a model or a dataset keeps the runs that used them: the log is history.
      CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        method      TEXT NOT NULL,
        status      TEXT NOT NULL,
        model_id    TEXT REFERENCES models (id) ON DELETE SET NULL,
        dataset_id  TEXT REFERENCES datasets (id) ON DELETE SET NULL,
        config      TEXT NOT NULL CHECK (json_valid(config)),
        out_dir     TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        started_at  TEXT,
        finished_at TEXT,
        error       TEXT
      ) STRICT;

      -- One row per optimizer step, clustered by run and step. loss and grad_norm are NULL when
      -- they were NaN: SQLite cannot store NaN, and a diverged run must still be logged.
      CREATE TABLE run_metrics (
        run_id       TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step         INTEGER NOT NULL CHECK (step >= 0),
        loss         REAL,
        lr           REAL NOT NULL,
        grad_norm    REAL,
        tokens       INTEGER NOT NULL CHECK (tokens >= 0),
        tokens_per_s REAL NOT NULL,
        elapsed_s    REAL NOT NULL,
        mem_bytes    INTEGER NOT NULL CHECK (mem_bytes >= 0),
        PRIMARY KEY (run_id, step)
      ) STRICT, WITHOUT ROWID;

      -- An adapter outlives its run (and imported ones never had one). base_model keeps the
      -- lineage as text (PEFT's base_model_name_or_path) even when the model row is gone.
      CREATE TABLE adapters (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        run_id     TEXT REFERENCES runs (id) ON DELETE SET NULL,
        base_model TEXT NOT NULL,
        model_id   TEXT REFERENCES models (id) ON DELETE SET NULL,
        path       TEXT NOT NULL UNIQUE,
        method     TEXT NOT NULL,
        rank       INTEGER NOT NULL CHECK (rank > 0),
        alpha      REAL NOT NULL,
        tags       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
        notes      TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL CHECK (json_valid(value))
      ) STRICT;
    `,
  },
  {
    version: 2,
    description: 'Chat sessions and their messages; exports of adapters',
    up: `
      -- A transcript is the user's: deleting its model or adapter keeps it.
      CREATE TABLE chat_sessions (
        id         TEXT PRIMARY KEY,
        title      TEXT NOT NULL,
        model_id   TEXT REFERENCES models (id) ON DELETE SET NULL,
        adapter_id TEXT REFERENCES adapters (id) ON DELETE SET NULL,
        created_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE chat_messages (
        id         INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
        ordering   INTEGER NOT NULL CHECK (ordering >= 0),
        role       TEXT NOT NULL,
        content    TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (session_id, ordering)
      ) STRICT;

      -- An export record belongs to its adapter; the files under exports/ are the service's.
      CREATE TABLE exports (
        id         TEXT PRIMARY KEY,
        adapter_id TEXT NOT NULL REFERENCES adapters (id) ON DELETE CASCADE,
        kind       TEXT NOT NULL,
        path       TEXT NOT NULL,
        gguf_type  TEXT,
        status     TEXT NOT NULL,
        error      TEXT,
        created_at TEXT NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 3,
    description: 'Resumable runs and evaluation; indexes for listing and for deletes through foreign keys',
    up: `
      ALTER TABLE runs ADD COLUMN last_checkpoint_step INTEGER CHECK (last_checkpoint_step >= 0);
      ALTER TABLE run_metrics ADD COLUMN eval_loss REAL;

      CREATE INDEX runs_by_created ON runs (created_at);
      -- Without these, deleting a model, run or adapter scans every referencing table.
      CREATE INDEX runs_by_model ON runs (model_id);
      CREATE INDEX runs_by_dataset ON runs (dataset_id);
      CREATE INDEX adapters_by_run ON adapters (run_id);
      CREATE INDEX adapters_by_model ON adapters (model_id);
      CREATE INDEX chat_sessions_by_model ON chat_sessions (model_id);
      CREATE INDEX chat_sessions_by_adapter ON chat_sessions (adapter_id);
      CREATE INDEX exports_by_adapter ON exports (adapter_id);
    `,
  },
]

/** The schema this version of Attune writes; a database above it is refused. */
export const latestSchemaVersion = migrations.length
