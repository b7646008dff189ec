// Starts the engine worker with Electron's utilityProcess, the app's way to run a Node child
// process. Takes Electron's `utilityProcess` as a parameter so this file never imports 'electron'
// and stays loadable (and type-checkable) outside Electron.
import { assertWorkerBuilt, defaultWorkerPath, type WorkerSpawner } from './spawner'

/** The part of Electron's UtilityProcess the host uses. */
export interface UtilityProcessChild {
  readonly pid: number | undefined
  postMessage(message: unknown): void
  kill(): boolean
  on(event: 'message', listener: (message: unknown) => void): this
  on(event: 'exit', listener: (code: number) => void): this
}

/** The part of Electron's `utilityProcess` module the host uses; pass `utilityProcess` itself. */
export interface UtilityProcessModule {
  fork(modulePath: string, args?: string[], options?: { serviceName?: string; stdio?: 'inherit' | 'ignore' }): UtilityProcessChild
}

/** Call only after Electron's app `ready` event: utilityProcess.fork fails before it. */
export function utilitySpawner(utilityProcess: UtilityProcessModule, workerPath: string = defaultWorkerPath()): WorkerSpawner {
  return {
    spawn(events) {
      assertWorkerBuilt(workerPath)
      const child = utilityProcess.fork(workerPath, [], { serviceName: 'Attune engine', stdio: 'inherit' })
      child.on('message', (message) => events.message(message))
      // utilityProcess reports only an exit code, also when the process was killed by a signal.
      child.on('exit', (code) => events.exit({ code, signal: null }))
      return {
        get pid() {
          return child.pid
        },
        send: (message) => child.postMessage(message),
        kill: () => {
          child.kill()
        },
      }
    },
  }
}
