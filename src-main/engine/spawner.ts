// How the engine host starts its worker process. The host takes any WorkerSpawner: forkSpawner
// (child_process.fork) for the CLI, the server and tests; utilitySpawner (utility-spawner.ts) in
// the Electron app.
import { fork } from 'node:child_process'
import { existsSync } from 'node:fs'
import { ApiError } from '../contract/errors'
import { builtPaths } from '../services/install-paths'
import type { HostMessage } from './protocol'

export interface WorkerExit {
  code: number | null
  signal: string | null
  /** Set when the process could not be started at all. */
  error?: string
}

/** What the spawner reports about the process it started; given at spawn so nothing is missed. */
export interface WorkerEvents {
  message(message: unknown): void
  exit(exit: WorkerExit): void
}

export interface WorkerHandle {
  readonly pid: number | undefined
  send(message: HostMessage): void
  /** Asks the process to stop; `exit` follows. */
  kill(): void
}

export interface WorkerSpawner {
  /** Throws an ApiError ENGINE_UNAVAILABLE when the worker cannot be started. */
  spawn(events: WorkerEvents): WorkerHandle
}

/** out/main/engine-worker.js, where `electron-vite build` puts the worker. */
export function defaultWorkerPath(): string {
  return builtPaths().engineWorker
}

export function assertWorkerBuilt(workerPath: string): void {
  if (!existsSync(workerPath)) {
    throw new ApiError('ENGINE_UNAVAILABLE', `The engine worker is not built (${workerPath} is missing): run npm run build`)
  }
}

export function forkSpawner(workerPath: string = defaultWorkerPath()): WorkerSpawner {
  return {
    spawn(events) {
      assertWorkerBuilt(workerPath)
      // execArgv: [] so the worker does not inherit the parent's flags (a debugger port, loaders).
      const child = fork(workerPath, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      child.on('message', (message) => events.message(message))
      child.on('exit', (code, signal) => events.exit({ code, signal }))
      child.on('error', (error) => {
        // Also emitted when a message cannot be sent; only a failed start gets no `exit` of its own.
        if (child.pid === undefined) events.exit({ code: null, signal: null, error: error.message })
      })
      return {
        pid: child.pid,
        send: (message) => {
          if (child.connected) child.send(message)
        },
        kill: () => child.kill(),
      }
    },
  }
}
