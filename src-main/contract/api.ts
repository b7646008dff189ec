import { z } from 'zod'
import { AppInfo, EngineStatus, SystemInfo } from './system'
import { RunSummary } from './runs'
import { ApiErrorShape } from './errors'

/**
 * The one API contract. Every operation has a request and a response schema; every event a
 * payload schema. The Electron preload, the WebSocket server and the renderer's clients are all
 * derived from these two tables, so an operation exists everywhere or nowhere.
 */
const Empty = z.object({}).strict()

export const operations = {
  appInfo: { request: Empty, response: AppInfo },
  systemInfo: { request: Empty, response: SystemInfo },
  runsList: {
    request: z.object({ limit: z.number().int().positive().max(1000).optional() }).strict(),
    response: z.array(RunSummary),
  },
} as const

export const events = {
  engineStatus: EngineStatus,
} as const

export type OperationName = keyof typeof operations
export type EventName = keyof typeof events
export type RequestOf<K extends OperationName> = z.input<(typeof operations)[K]['request']>
export type ResponseOf<K extends OperationName> = z.output<(typeof operations)[K]['response']>
export type EventOf<K extends EventName> = z.output<(typeof events)[K]>

export const operationNames = Object.keys(operations) as OperationName[]
export const eventNames = Object.keys(events) as EventName[]

export type Unsubscribe = () => void

/** What the renderer sees as `window.attune` (Electron) or its WebSocket client (browser). */
export type AttuneApi = {
  [K in OperationName]: (request: RequestOf<K>) => Promise<ResponseOf<K>>
} & {
  on<E extends EventName>(event: E, listener: (payload: EventOf<E>) => void): Unsubscribe
}

/** Channel names shared by the preload and the IPC binding. */
export const ipcChannel = {
  call: (op: OperationName) => `attune:call:${op}`,
  event: (name: EventName) => `attune:event:${name}`,
} as const

/** Frames of the WebSocket transport. */
export const ClientFrame = z.discriminatedUnion('type', [
  z.object({ type: z.literal('call'), id: z.number().int(), op: z.string(), request: z.unknown() }),
])
export type ClientFrame = z.infer<typeof ClientFrame>

/** What a call returns over any transport: never a thrown error, always an envelope. */
export type CallResult = { ok: true; value: unknown } | { ok: false; error: ApiErrorShape }

export type ServerFrame = ({ type: 'result'; id: number } & CallResult) | { type: 'event'; event: EventName; payload: unknown }
