import { ref, type Ref } from 'vue'
import type { AttuneApi, AttuneBridge, CallResult } from '../../src-main/contract/api'
import { apiSocketUrl, takeAccessToken } from './access-token'
import { makeAttuneApi } from './attune-api'
import { createWebSocketApi, type ConnectionState } from './ws-client'

declare global {
  interface Window {
    /** Set by the Electron preload; absent when the page is served by `attune serve`. */
    attuneBridge?: AttuneBridge
  }
}

export type Transport =
  | { kind: 'electron' | 'websocket'; api: AttuneApi; connection: Readonly<Ref<ConnectionState>> }
  | { kind: 'missing-token' }

/**
 * In the desktop app the preload's bridge is the way in; in a browser the page talks to the
 * `attune serve` that served it, which needs the token from the printed link.
 */
export function chooseTransport(page: Window = window): Transport {
  const bridge = page.attuneBridge
  if (bridge) return { kind: 'electron', api: bridgeApi(bridge), connection: ref('open') }

  const token = takeAccessToken(page)
  if (!token) return { kind: 'missing-token' }
  const connection = ref<ConnectionState>('connecting')
  const api = createWebSocketApi({
    url: apiSocketUrl(page.location, token),
    WebSocket,
    onConnectionChange: (state) => (connection.value = state),
  })
  return { kind: 'websocket', api, connection }
}

/** The preload answers with envelopes (an error's code would not survive the context bridge). */
export function bridgeApi(bridge: AttuneBridge): AttuneApi {
  return makeAttuneApi(
    (op, request) => (bridge[op] as (request: unknown) => Promise<CallResult>)(request),
    (event, listener) => bridge.on(event, listener),
  )
}
