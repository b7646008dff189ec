/**
 * The names of every operation and event, with no runtime dependency: the sandboxed Electron
 * preload imports this file alone (it cannot load zod), and api.ts checks its tables against it.
 */
export const operationNames = ['appInfo', 'systemInfo', 'engineState', 'runsList'] as const
export const eventNames = ['engineStatus'] as const

export type OperationName = (typeof operationNames)[number]
export type EventName = (typeof eventNames)[number]

/** Channel names shared by the preload and the IPC binding. */
export const ipcChannel = {
  call: (op: OperationName) => `attune:call:${op}`,
  event: (name: EventName) => `attune:event:${name}`,
} as const
