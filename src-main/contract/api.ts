import { z } from 'zod'
import { AppInfo, EngineStatus, SystemInfo } from './system'
import { RunSummary } from './runs'
import type { ApiErrorShape } from './errors'
import type { EventName, OperationName } from './names'

export { eventNames, ipcChannel, operationNames } from './names'
export type { EventName, OperationName } from './names'

interface OperationSpec {
  request: z.ZodType
  response: z.ZodType
}

/**
 * The one API contract. Every operation has a request and a response schema; every event a
 * payload schema. The Electron preload, the WebSocket server and the renderer's clients are all
 * derived from these two tables, so an operation exists everywhere or nowhere.
 */
const Empty = z.object({}).strict()

export const operations = {
  appInfo: { request: Empty, response: AppInfo },
  systemInfo: { request: Empty, response: SystemInfo },
  /** The engine worker's state now; changes arrive as `engineStatus` events. */
  engineState: { request: Empty, response: EngineStatus },
  runsList: {
    request: z.object({ limit: z.number().int().positive().max(1000).optional() }).strict(),
    response: z.array(RunSummary),
  },
} as const satisfies Record<OperationName, OperationSpec>

export const events = {
  engineStatus: EngineStatus,
} as const satisfies Record<EventName, z.ZodType>

export type RequestOf<K extends OperationName> = z.input<(typeof operations)[K]['request']>
export type ResponseOf<K extends OperationName> = z.output<(typeof operations)[K]['response']>
export type EventOf<K extends EventName> = z.output<(typeof events)[K]>

export type Unsubscribe = () => void

/** What the renderer sees as `window.attune` (Electron) or its WebSocket client (browser). */
export type AttuneApi = {
  [K in OperationName]: (request: RequestOf<K>) => Promise<ResponseOf<K>>
} & {
  on<E extends EventName>(event: E, listener: (payload: EventOf<E>) => void): Unsubscribe
}

/**
 * What the Electron preload exposes as `window.attuneBridge`: the same operations, answering
 * with envelopes (errors keep their code that way across the context bridge). The renderer
 * turns it into an AttuneApi.
 */
export type AttuneBridge = {
  [K in OperationName]: (request: RequestOf<K>) => Promise<CallResult>
} & {
  on<E extends EventName>(event: E, listener: (payload: EventOf<E>) => void): Unsubscribe
}

/** Frames of the WebSocket transport. */
export const ClientFrame = z.discriminatedUnion('type', [
  z.object({ type: z.literal('call'), id: z.number().int(), op: z.string(), request: z.unknown() }),
])
export type ClientFrame = z.infer<typeof ClientFrame>

/** What a call returns over any transport: never a thrown error, always an envelope. */
export type CallResult = { ok: true; value: unknown } | { ok: false; error: ApiErrorShape }

export type ServerFrame = ({ type: 'result'; id: number } & CallResult) | { type: 'event'; event: EventName; payload: unknown }
