import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { ClientFrame, eventNames, type ServerFrame } from '../contract/api'
import type { EventHub } from '../services/events'
import type { Router } from '../services/router'
import { presentedToken, tokenMatches } from './access-token'
import { serveStatic } from './static-files'

export interface ApiServerOptions {
  router: Router
  events: EventHub
  /** The built renderer to serve over HTTP. */
  rendererDir: string
  token: string
  host: string
  /** 0 picks a free port. */
  port: number
  log?: (message: string) => void
}

export interface RunningApiServer {
  url: string
  port: number
  close(): Promise<void>
}

/** The largest frame a client may send; API requests are small, files never travel over it. */
const maxFrameBytes = 1024 * 1024
const maxBodyBytes = 1024 * 1024

/**
 * `attune serve`: the built renderer over HTTP and the API over a WebSocket at /api, both on one
 * port. Every /api request, the WebSocket upgrade included, must carry the per-start token;
 * an upgrade without it is refused before any frame is exchanged.
 */
export async function startApiServer(options: ApiServerOptions): Promise<RunningApiServer> {
  const log = options.log ?? ((message: string) => console.error(message))
  const sockets = new WebSocketServer({ noServer: true, maxPayload: maxFrameBytes })
  const server = createServer((request, response) => {
    handleHttp(options, request, response).catch((error: unknown) => {
      log(`attune serve: request failed: ${String(error)}`)
      if (!response.headersSent) response.writeHead(500).end()
    })
  })

  server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname
    if (path !== '/api' || !tokenMatches(options.token, presentedToken(request))) {
      log(`attune serve: refused a WebSocket connection to ${path} (${path === '/api' ? 'wrong or missing token' : 'unknown path'})`)
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      return
    }
    sockets.handleUpgrade(request, socket, head, (ws) => attachClient(options, ws, log))
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  const hostInUrl = options.host.includes(':') ? `[${options.host}]` : options.host
  return {
    url: `http://${hostInUrl}:${port}/?token=${options.token}`,
    port,
    close: () => closeAll(server, sockets),
  }
}

function attachClient(options: ApiServerOptions, ws: WebSocket, log: (message: string) => void): void {
  const send = (frame: ServerFrame): void => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame))
  }
  const unsubscribes = eventNames.map((event) => options.events.on(event, (payload) => send({ type: 'event', event, payload })))
  ws.on('close', () => unsubscribes.forEach((unsubscribe) => unsubscribe()))
  ws.on('message', (data, isBinary) => {
    let frame: ClientFrame
    try {
      if (isBinary) throw new Error('binary frames are not accepted')
      frame = ClientFrame.parse(JSON.parse(String(data)))
    } catch (error) {
      log(`attune serve: dropped a malformed frame: ${error instanceof Error ? error.message : String(error)}`)
      send({ type: 'result', id: -1, ok: false, error: { code: 'INVALID_REQUEST', message: 'The message was not a valid API frame.' } })
      return
    }
    void options.router.call(frame.op, frame.request, { transport: 'websocket' }).then((result) => send({ type: 'result', id: frame.id, ...result }))
  })
}

async function handleHttp(options: ApiServerOptions, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = new URL(request.url ?? '/', 'http://localhost').pathname
  if (!path.startsWith('/api')) {
    serveStatic(options.rendererDir, request, response)
    return
  }
  if (!tokenMatches(options.token, presentedToken(request))) {
    json(response, 401, { ok: false, error: { code: 'USER_ERROR', message: 'A valid access token is required: use the link that attune serve printed.' } })
    return
  }
  // POST /api/call/<operation> with a JSON body: the same router, for scripts and curl.
  const match = /^\/api\/call\/([A-Za-z]+)$/.exec(path)
  if (!match || request.method !== 'POST') {
    json(response, 404, { ok: false, error: { code: 'UNKNOWN_OPERATION', message: 'Use POST /api/call/<operation>.' } })
    return
  }
  let body: unknown
  try {
    const text = await readBody(request)
    body = text.length === 0 ? {} : JSON.parse(text)
  } catch (error) {
    json(response, 400, { ok: false, error: { code: 'INVALID_REQUEST', message: `The request body is not valid JSON: ${(error as Error).message}` } })
    return
  }
  const result = await options.router.call(match[1]!, body, { transport: 'http' })
  json(response, result.ok ? 200 : 400, result)
}

function json(response: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  response.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body)
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    request.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > maxBodyBytes) {
        reject(new Error('the body is larger than 1 MB'))
        request.destroy()
      } else chunks.push(chunk)
    })
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    request.on('error', reject)
  })
}

function closeAll(server: Server, sockets: WebSocketServer): Promise<void> {
  for (const client of sockets.clients) client.terminate()
  sockets.close()
  server.closeAllConnections()
  return new Promise((resolve) => server.close(() => resolve()))
}
