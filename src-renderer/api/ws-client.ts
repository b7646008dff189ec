import { z } from 'zod'
import { eventNames, type AttuneApi, type CallResult, type ClientFrame, type EventName, type ServerFrame } from '../../src-main/contract/api'
import { ApiErrorShape } from '../../src-main/contract/errors'
import { makeAttuneApi } from './attune-api'

/** `connecting`: the first attempt; `lost`: the connection dropped and is being retried. */
export type ConnectionState = 'connecting' | 'open' | 'lost'

export interface WebSocketApiOptions {
  /** `ws(s)://host/api?token=…` */
  url: string
  /** The WebSocket class to use: the page's own in the app; tests may pass another. */
  WebSocket: new (url: string) => WebSocket
  onConnectionChange?: (state: ConnectionState) => void
  /** Waits between reconnection attempts: doubling from `firstMs`, never above `maxMs`. */
  retryDelay?: { firstMs: number; maxMs: number }
}

export type WebSocketApi = AttuneApi & {
  /** Stops reconnecting and closes the socket; calls still waiting are rejected. */
  close(): void
}

export const connectionLostMessage = 'The connection to Attune was lost before it answered. Try again once it is back.'
export const notConnectedMessage = 'Not connected to Attune right now; it is reconnecting. Try again in a moment.'

const ServerFrameSchema = z.union([
  z.object({ type: z.literal('result'), id: z.number(), ok: z.literal(true), value: z.unknown() }),
  z.object({ type: z.literal('result'), id: z.number(), ok: z.literal(false), error: ApiErrorShape }),
  z.object({ type: z.literal('event'), event: z.enum(eventNames), payload: z.unknown() }),
])

const socketOpen = 1
const socketConnecting = 0

interface WaitingCall {
  resolve(result: CallResult): void
  reject(error: Error): void
}

/**
 * The AttuneApi over `attune serve`'s WebSocket. A call made while a connection attempt is under
 * way waits for it; every call still unanswered when the socket closes is rejected, since the
 * server forgets it too. After a drop it reconnects with a growing delay.
 */
export function createWebSocketApi(options: WebSocketApiOptions): WebSocketApi {
  const { firstMs, maxMs } = options.retryDelay ?? { firstMs: 500, maxMs: 10_000 }
  const waiting = new Map<number, WaitingCall>()
  const unsent: ClientFrame[] = []
  const listeners = new Map<EventName, Set<(payload: unknown) => void>>()
  let nextId = 1
  let socket: WebSocket | undefined
  let delayMs = firstMs
  let retryTimer: ReturnType<typeof setTimeout> | undefined
  let closedByUs = false
  let state: ConnectionState = 'connecting'

  // Only changes are reported: a string of failed attempts is one 'lost', not many.
  function setState(next: ConnectionState): void {
    if (next === state) return
    state = next
    options.onConnectionChange?.(next)
  }

  function connect(): void {
    const ws = new options.WebSocket(options.url)
    socket = ws
    ws.addEventListener('open', () => {
      delayMs = firstMs
      setState('open')
      for (const frame of unsent.splice(0)) ws.send(JSON.stringify(frame))
    })
    ws.addEventListener('message', (event) => receive(event.data))
    // A failed attempt fires `error` and then `close`, so `close` alone covers both.
    ws.addEventListener('close', () => {
      if (socket !== ws) return
      socket = undefined
      rejectWaiting(closedByUs ? 'The connection to Attune was closed.' : connectionLostMessage)
      if (closedByUs) return
      setState('lost')
      retryTimer = setTimeout(connect, delayMs)
      delayMs = Math.min(delayMs * 2, maxMs)
    })
  }

  function receive(data: unknown): void {
    let frame: ServerFrame
    try {
      frame = ServerFrameSchema.parse(JSON.parse(String(data)))
    } catch {
      // A newer server may send events this page does not know yet; dropping them is safe.
      console.warn('attune: ignored a message that is not an API frame:', String(data).slice(0, 200))
      return
    }
    if (frame.type === 'event') {
      for (const listener of listeners.get(frame.event) ?? []) listener(frame.payload)
      return
    }
    const call = waiting.get(frame.id)
    if (!call) return // an answer to nothing we asked (the server uses id -1 for unreadable frames)
    waiting.delete(frame.id)
    call.resolve(frame)
  }

  function rejectWaiting(message: string): void {
    unsent.length = 0
    for (const call of waiting.values()) call.reject(new Error(message))
    waiting.clear()
  }

  const api = makeAttuneApi(
    (op, request) =>
      new Promise<CallResult>((resolve, reject) => {
        if (!socket) return reject(new Error(closedByUs ? 'The connection to Attune was closed.' : notConnectedMessage))
        const frame: ClientFrame = { type: 'call', id: nextId++, op, request }
        waiting.set(frame.id, { resolve, reject })
        if (socket.readyState === socketOpen) socket.send(JSON.stringify(frame))
        else if (socket.readyState === socketConnecting) unsent.push(frame)
      }),
    (event, listener) => {
      let set = listeners.get(event)
      if (!set) listeners.set(event, (set = new Set()))
      const untyped = listener as (payload: unknown) => void
      set.add(untyped)
      return () => void set.delete(untyped)
    },
  )

  connect()
  return {
    ...api,
    close() {
      closedByUs = true
      clearTimeout(retryTimer)
      socket?.close()
    },
  }
}
