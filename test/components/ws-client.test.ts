import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { WebSocketServer, type WebSocket as ServerSocket } from 'ws'
import { operationNames, type ClientFrame, type ServerFrame } from '../../src-main/contract/api'
import { ApiError } from '../../src-main/contract/errors'
import {
  connectionLostMessage,
  createWebSocketApi,
  notConnectedMessage,
  type ConnectionState,
  type WebSocketApi,
} from '../../src-renderer/api/ws-client'
import { sampleApp } from './fake-api'

// A real WebSocket server on loopback, answering like `attune serve`; the client uses the page's
// WebSocket class (happy-dom's here).
let server: WebSocketServer
let url: string
let client: WebSocketApi | undefined
const received: ClientFrame[] = []
/** What the server does with each call; answers appInfo unless a test says otherwise. */
let answer: (frame: ClientFrame, socket: ServerSocket) => void

const send = (socket: ServerSocket, frame: ServerFrame) => socket.send(JSON.stringify(frame))

beforeEach(async () => {
  server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/api?token=secret`
  received.length = 0
  answer = (frame, socket) => send(socket, { type: 'result', id: frame.id, ok: true, value: sampleApp })
  server.on('connection', (socket) =>
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as ClientFrame
      received.push(frame)
      answer(frame, socket)
    }),
  )
})

afterEach(async () => {
  client?.close()
  client = undefined
  for (const socket of server.clients) socket.terminate()
  await new Promise((resolve) => server.close(resolve))
})

function connect(states: ConnectionState[] = []): WebSocketApi {
  client = createWebSocketApi({
    url,
    WebSocket,
    onConnectionChange: (state) => states.push(state),
    retryDelay: { firstMs: 20, maxMs: 40 },
  })
  return client
}

async function until(condition: () => boolean): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited > 3000) throw new Error('timed out waiting for a condition')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('WebSocket client', () => {
  it('has one function per operation in the contract', () => {
    const api = connect()
    for (const op of operationNames) expect(typeof api[op]).toBe('function')
  })

  it('sends a call frame once connected and resolves with the value', async () => {
    const states: ConnectionState[] = []
    const api = connect(states)
    await expect(api.appInfo({})).resolves.toEqual(sampleApp)
    expect(received).toEqual([{ type: 'call', id: expect.any(Number), op: 'appInfo', request: {} }])
    expect(states).toEqual(['open'])
  })

  it('matches answers to calls by id, whatever order they come in', async () => {
    const held: ClientFrame[] = []
    answer = (frame, socket) => {
      held.push(frame)
      if (held.length < 2) return
      for (const call of held.reverse()) send(socket, { type: 'result', id: call.id, ok: true, value: call.op })
    }
    const api = connect()
    const [app, runs] = await Promise.all([api.appInfo({}), api.runsList({ limit: 5 })])
    expect([app, runs]).toEqual(['appInfo', 'runsList'])
    expect(received.find((frame) => frame.op === 'runsList')?.request).toEqual({ limit: 5 })
  })

  it('rejects with an ApiError carrying the code, message and details of an error envelope', async () => {
    answer = (frame, socket) =>
      send(socket, {
        type: 'result',
        id: frame.id,
        ok: false,
        error: { code: 'INVALID_REQUEST', message: 'limit must be at most 1000', details: ['limit'] },
      })
    const api = connect()
    const error = await api.runsList({ limit: 5000 }).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ code: 'INVALID_REQUEST', message: 'limit must be at most 1000', details: ['limit'] })
  })

  it('delivers events to listeners until they unsubscribe', async () => {
    const api = connect()
    await api.appInfo({})
    const first: unknown[] = []
    const second: unknown[] = []
    const unsubscribeFirst = api.on('engineStatus', (payload) => first.push(payload))
    api.on('engineStatus', (payload) => second.push(payload))
    const [socket] = server.clients

    send(socket!, { type: 'event', event: 'engineStatus', payload: { state: 'starting' } })
    await until(() => second.length === 1)
    unsubscribeFirst()
    send(socket!, { type: 'event', event: 'engineStatus', payload: { state: 'ready' } })
    await until(() => second.length === 2)

    expect(first).toEqual([{ state: 'starting' }])
    expect(second).toEqual([{ state: 'starting' }, { state: 'ready' }])
  })

  it('rejects calls in flight with a plain message when the connection drops, then reconnects', async () => {
    const states: ConnectionState[] = []
    const api = connect(states)
    await api.appInfo({})
    answer = () => {} // the server never answers: the call is in flight when the socket drops
    const inFlight = api.systemInfo({}).catch((caught: unknown) => caught)
    await until(() => received.length === 2)
    for (const socket of server.clients) socket.terminate()

    const error = await inFlight
    expect(error).toBeInstanceOf(Error)
    expect(error).not.toBeInstanceOf(ApiError)
    expect((error as Error).message).toBe(connectionLostMessage)
    expect(states).toEqual(['open', 'lost'])

    // Between attempts there is nothing to wait for, so a call fails at once.
    await expect(api.appInfo({})).rejects.toThrow(notConnectedMessage)

    await until(() => states.length === 3)
    expect(states[2]).toBe('open')
    answer = (frame, socket) => send(socket, { type: 'result', id: frame.id, ok: true, value: 'back' })
    await expect(api.appInfo({})).resolves.toBe('back')
  })

  it('keeps retrying while the server is away', async () => {
    const states: ConnectionState[] = []
    const api = connect(states)
    await api.appInfo({})
    const port = (server.address() as AddressInfo).port
    for (const socket of server.clients) socket.terminate()
    await new Promise((resolve) => server.close(resolve))
    await until(() => states.includes('lost'))
    await new Promise((resolve) => setTimeout(resolve, 150)) // several failed attempts

    server = new WebSocketServer({ host: '127.0.0.1', port })
    server.on('connection', (socket) =>
      socket.on('message', (data) => {
        const frame = JSON.parse(String(data)) as ClientFrame
        send(socket, { type: 'result', id: frame.id, ok: true, value: 'again' })
      }),
    )
    await until(() => states.at(-1) === 'open')
    expect(states).toEqual(['open', 'lost', 'open'])
    await expect(api.appInfo({})).resolves.toBe('again')
  })

  it('ignores messages that are not API frames', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    const api = connect()
    await api.appInfo({})
    const [socket] = server.clients
    socket!.send('not json')
    socket!.send(JSON.stringify({ type: 'event', event: 'noSuchEvent', payload: 1 }))
    await expect(api.appInfo({})).resolves.toEqual(sampleApp)
    expect(warn).toHaveBeenCalledTimes(2)
    warn.mockRestore()
  })

  it('stops for good when closed, rejecting what was still waiting', async () => {
    const states: ConnectionState[] = []
    const api = connect(states)
    await api.appInfo({})
    answer = () => {}
    const waiting = api.systemInfo({}).catch((caught: unknown) => caught)
    await until(() => received.length === 2)
    api.close()

    expect(((await waiting) as Error).message).toBe('The connection to Attune was closed.')
    await expect(api.appInfo({})).rejects.toThrow('The connection to Attune was closed.')
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(server.clients.size).toBe(0)
    expect(states).toEqual(['open'])
  })
})
