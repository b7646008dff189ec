import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import type { CallResult, ServerFrame } from '../../src-main/contract/api'
import { bindIpc, type IpcMainLike } from '../../src-main/app/ipc-binding'
import { createBridge, type IpcRendererLike } from '../../src-main/app/bridge'
import { startApiServer, type RunningApiServer } from '../../src-main/server/api-server'
import { EventHub } from '../../src-main/services/events'
import { Router } from '../../src-main/services/router'
import { fakeHandlers } from './support/fake-handlers'

// The same router behind both transports must answer the same calls the same way.

const ourPage = 'file:///app/out/renderer/index.html'

/** Electron's two IPC ends joined in-process: what the binding and the bridge talk through. */
function ipcPair(senderUrl: string) {
  const handlers = new Map<string, Parameters<IpcMainLike['handle']>[1]>()
  const listeners = new Map<string, Set<(event: unknown, payload: unknown) => void>>()
  const ipcMain: IpcMainLike = { handle: (channel, listener) => void handlers.set(channel, listener) }
  const ipcRenderer: IpcRendererLike = {
    invoke: async (channel, request) => {
      const handler = handlers.get(channel)
      if (!handler) throw new Error(`No handler registered for '${channel}'`)
      // Electron structured-clones payloads both ways.
      return structuredClone(await handler({ senderFrame: { url: senderUrl } }, structuredClone(request)))
    },
    on: (channel, listener) => {
      if (!listeners.has(channel)) listeners.set(channel, new Set())
      listeners.get(channel)!.add(listener)
    },
    removeListener: (channel, listener) => listeners.get(channel)?.delete(listener),
  }
  const broadcast = (channel: string, payload: unknown) => listeners.get(channel)?.forEach((listener) => listener({}, structuredClone(payload)))
  return { ipcMain, ipcRenderer, broadcast }
}

function ipcTransport(senderUrl = ourPage) {
  const events = new EventHub()
  const router = new Router(fakeHandlers(), () => {})
  const pair = ipcPair(senderUrl)
  bindIpc({ ipcMain: pair.ipcMain, router, events, isTrustedSender: (url) => url === ourPage, broadcast: pair.broadcast, log: () => {} })
  return { bridge: createBridge(pair.ipcRenderer), events }
}

let server: RunningApiServer
const wsEvents = new EventHub()
const token = 'test-token-0123456789'

beforeAll(async () => {
  const rendererDir = mkdtempSync(join(tmpdir(), 'attune-renderer-'))
  writeFileSync(join(rendererDir, 'index.html'), '<!doctype html><title>Attune</title>')
  server = await startApiServer({ router: new Router(fakeHandlers(), () => {}), events: wsEvents, rendererDir, token, host: '127.0.0.1', port: 0, log: () => {} })
})
afterAll(() => server.close())

/** A minimal WebSocket client speaking the contract's frames. */
async function wsClient() {
  const socket = new WebSocket(`ws://127.0.0.1:${server.port}/api?token=${token}`)
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject))
  const pending = new Map<number, (result: CallResult) => void>()
  const events: ServerFrame[] = []
  socket.on('message', (data) => {
    const frame = JSON.parse(String(data)) as ServerFrame
    if (frame.type === 'event') events.push(frame)
    else pending.get(frame.id)?.(frame.ok ? { ok: true, value: frame.value } : { ok: false, error: frame.error })
  })
  let next = 1
  return {
    events,
    call: (op: string, request: unknown) =>
      new Promise<CallResult>((resolve) => {
        const id = next++
        pending.set(id, resolve)
        socket.send(JSON.stringify({ type: 'call', id, op, request }))
      }),
    close: () => socket.close(),
  }
}

const calls: Array<[string, unknown]> = [
  ['runsList', {}],
  ['runsList', { limit: 1 }],
  ['runsList', { limit: 0 }],
  ['systemInfo', { unexpected: true }],
  ['systemInfo', {}],
]

describe('transports', () => {
  it('IPC and WebSocket give identical answers to the same calls', async () => {
    const { bridge } = ipcTransport()
    const ws = await wsClient()
    for (const [op, request] of calls) {
      const viaIpc = await (bridge as unknown as Record<string, (request: unknown) => Promise<CallResult>>)[op]!(request)
      const viaWs = await ws.call(op, request)
      expect(viaIpc, `${op} ${JSON.stringify(request)}`).toEqual(viaWs)
    }
    // Each transport names itself to the services.
    expect(await bridge.appInfo({})).toMatchObject({ ok: true, value: { transport: 'ipc' } })
    expect(await ws.call('appInfo', {})).toMatchObject({ ok: true, value: { transport: 'websocket' } })
    ws.close()
  })

  it('IPC refuses calls from any frame but our page', async () => {
    const { bridge } = ipcTransport('https://evil.example/')
    expect(await bridge.appInfo({})).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } })
  })

  it('events reach IPC subscribers until they unsubscribe', async () => {
    const { bridge, events } = ipcTransport()
    const seen: unknown[] = []
    const unsubscribe = bridge.on('engineStatus', (payload) => seen.push(payload))
    events.emit('engineStatus', { state: 'ready' })
    unsubscribe()
    events.emit('engineStatus', { state: 'crashed', reason: 'killed' })
    expect(seen).toEqual([{ state: 'ready' }])
  })

  it('events reach WebSocket clients', async () => {
    const ws = await wsClient()
    wsEvents.emit('engineStatus', { state: 'starting' })
    await expect.poll(() => ws.events.length).toBe(1)
    expect(ws.events[0]).toEqual({ type: 'event', event: 'engineStatus', payload: { state: 'starting' } })
    ws.close()
  })

  it('a client that disconnects stops receiving events without breaking the others', async () => {
    const first = await wsClient()
    const second = await wsClient()
    first.close()
    await new Promise((resolve) => setTimeout(resolve, 50))
    wsEvents.emit('engineStatus', { state: 'ready' })
    await expect.poll(() => second.events.length).toBe(1)
    second.close()
  })
})
