import { EngineHost, type WorkerSpawner } from '../engine/host'
import { openDatabase, type AttuneDatabase } from '../store/database'
import { EventHub } from './events'
import { prepareHome, type HomeLayout } from './home'
import { Router, type Handlers } from './router'

export interface ServicesOptions {
  homeDir: string
  /** How the engine worker process is started: fork (CLI, server, tests) or utilityProcess (app). */
  spawner: WorkerSpawner
  version: string
  /** better-sqlite3 build to load instead of the default (Electron's ABI, see app/sqlite-binding). */
  sqliteBinding?: string
  log?: (message: string) => void
}

/** Everything a transport needs: the router for calls, the hub for events, and a way to stop. */
export interface AttuneServices {
  router: Router
  events: EventHub
  home: HomeLayout
  /** The engine worker's host, for long jobs the CLI streams (generate, eval, train). */
  engine: EngineHost
  /** The experiment log. */
  database: AttuneDatabase
  close(): Promise<void>
}

/**
 * Opens the home folder, the experiment log and the engine host, and binds the contract's
 * operations to them. The CLI, `attune serve` and the Electron app all start here, so nothing is
 * implemented twice.
 */
export function openServices(options: ServicesOptions): AttuneServices {
  const log = options.log ?? ((message: string) => console.warn(message))
  const home = prepareHome(options.homeDir)
  const database = openDatabase(home.databasePath, options.sqliteBinding ? { nativeBinding: options.sqliteBinding } : {})
  const events = new EventHub()
  const engine = new EngineHost({ spawner: options.spawner, onStatus: (status) => events.emit('engineStatus', status) })
  const router = new Router(createHandlers({ home, database, engine, version: options.version }), log)
  return {
    router,
    events,
    home,
    engine,
    database,
    async close() {
      await engine.dispose()
      database.close()
    },
  }
}

interface HandlerDeps {
  home: HomeLayout
  database: AttuneDatabase
  engine: EngineHost
  version: string
}

function createHandlers({ home, database, engine, version }: HandlerDeps): Handlers {
  return {
    appInfo: async (_request, context) => ({ version, homeDir: home.root, databasePath: home.databasePath, transport: context.transport }),
    systemInfo: () => engine.call('systemInfo', {}),
    engineState: async () => engine.status,
    runsList: async (request) => database.runs.listRuns({ limit: request.limit ?? 200 }),
  }
}
