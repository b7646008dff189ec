import type { AttuneBridge, CallResult } from '../contract/api'
import { eventNames, ipcChannel, operationNames, type EventName } from '../contract/names'

/** The slice of Electron's ipcRenderer the bridge uses (typed here so tests need no Electron). */
export interface IpcRendererLike {
  invoke(channel: string, request: unknown): Promise<unknown>
  on(channel: string, listener: (event: unknown, payload: unknown) => void): unknown
  removeListener(channel: string, listener: (event: unknown, payload: unknown) => void): unknown
}

/**
 * What the preload exposes as `window.attuneBridge`: one function per operation, each on its
 * own channel (never a generic invoke the page could aim anywhere), and event subscriptions that
 * return their unsubscribe. Calls resolve to the router's envelopes rather than throwing, because
 * errors lose their code when they cross the context bridge; the renderer unwraps them exactly
 * as it does WebSocket frames.
 */
export function createBridge(ipc: IpcRendererLike): AttuneBridge {
  const bridge: Record<string, unknown> = {}
  for (const op of operationNames) {
    bridge[op] = async (request: unknown) => (await ipc.invoke(ipcChannel.call(op), request ?? {})) as CallResult
  }
  bridge.on = (event: EventName, listener: (payload: unknown) => void) => {
    if (!eventNames.includes(event)) throw new Error(`Unknown event "${String(event)}"`)
    const channel = ipcChannel.event(event)
    const handler = (_event: unknown, payload: unknown) => listener(payload)
    ipc.on(channel, handler)
    return () => {
      ipc.removeListener(channel, handler)
    }
  }
  return bridge as AttuneBridge
}
