import { eventNames, ipcChannel, operationNames } from '../contract/names'
import type { CallResult } from '../contract/api'
import type { EventHub } from '../services/events'
import type { Router } from '../services/router'

/** The slice of Electron's ipcMain this binding uses (typed here so tests need no Electron). */
export interface IpcMainLike {
  handle(channel: string, listener: (event: { senderFrame?: { url: string } | null }, request: unknown) => Promise<CallResult>): void
}

export interface IpcBindingOptions {
  ipcMain: IpcMainLike
  router: Router
  events: EventHub
  /** Whether the calling frame is our own page; anything else is refused. */
  isTrustedSender(url: string): boolean
  /** Delivers an event to every open window. */
  broadcast(channel: string, payload: unknown): void
  log?: (message: string) => void
}

/** Serves every contract operation over Electron IPC, each on its own channel. */
export function bindIpc(options: IpcBindingOptions): void {
  const log = options.log ?? ((message: string) => console.warn(message))
  for (const op of operationNames) {
    options.ipcMain.handle(ipcChannel.call(op), async (event, request) => {
      const url = event.senderFrame?.url ?? ''
      if (!options.isTrustedSender(url)) {
        log(`attune: refused ${op} from ${url || 'an unknown frame'}`)
        return { ok: false, error: { code: 'INVALID_REQUEST', message: 'Calls are only accepted from the Attune window.' } }
      }
      return options.router.call(op, request, { transport: 'ipc' })
    })
  }
  for (const name of eventNames) options.events.on(name, (payload) => options.broadcast(ipcChannel.event(name), payload))
}
