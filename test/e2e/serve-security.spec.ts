import WebSocket from 'ws'
import { expect, test } from './serve-fixture'

// `attune serve` must refuse anyone without this start's token, before any API frame.

function upgradeStatus(url: string): Promise<number | 'open'> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url)
    socket.once('open', () => {
      socket.close()
      resolve('open')
    })
    socket.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0))
    socket.once('error', reject)
  })
}

test('a WebSocket upgrade without the token, or with a wrong one, is refused with 401', async ({ attune }) => {
  const wsBase = attune.origin.replace('http', 'ws')
  expect(await upgradeStatus(`${wsBase}/api`)).toBe(401)
  expect(await upgradeStatus(`${wsBase}/api?token=${'x'.repeat(attune.token.length)}`)).toBe(401)
  expect(await upgradeStatus(`${wsBase}/api?token=${attune.token}`)).toBe('open')
  expect(attune.stderr()).toContain('refused a WebSocket connection')
})

test('HTTP API calls need the token too', async ({ attune }) => {
  const call = (headers: Record<string, string>) => fetch(`${attune.origin}/api/call/appInfo`, { method: 'POST', headers, body: '{}' })
  expect((await call({})).status).toBe(401)
  expect((await call({ Authorization: 'Bearer wrong' })).status).toBe(401)
  const ok = await call({ Authorization: `Bearer ${attune.token}` })
  expect(ok.status).toBe(200)
  const body = (await ok.json()) as { ok: boolean; value: { homeDir: string; transport: string } }
  expect(body.value.homeDir).toBe(attune.homeDir)
  expect(body.value.transport).toBe('http')
})

test('a malformed or invalid frame gets a typed error and the connection keeps working', async ({ attune }) => {
  const socket = new WebSocket(`${attune.origin.replace('http', 'ws')}/api?token=${attune.token}`)
  await new Promise((resolve) => socket.once('open', resolve))
  const replies: unknown[] = []
  socket.on('message', (data) => replies.push(JSON.parse(String(data))))
  const waitFor = async (count: number) => expect.poll(() => replies.length).toBeGreaterThanOrEqual(count)

  socket.send('this is not json')
  await waitFor(1)
  expect(replies[0]).toMatchObject({ type: 'result', id: -1, ok: false, error: { code: 'INVALID_REQUEST' } })

  socket.send(JSON.stringify({ type: 'call', id: 7, op: 'runsList', request: { limit: 'ten' } }))
  await waitFor(2)
  expect(replies[1]).toMatchObject({ type: 'result', id: 7, ok: false, error: { code: 'INVALID_REQUEST' } })

  socket.send(JSON.stringify({ type: 'call', id: 8, op: 'dropDatabase', request: {} }))
  await waitFor(3)
  expect(replies[2]).toMatchObject({ id: 8, ok: false, error: { code: 'UNKNOWN_OPERATION' } })

  socket.send(JSON.stringify({ type: 'call', id: 9, op: 'runsList', request: {} }))
  await waitFor(4)
  expect(replies[3]).toMatchObject({ id: 9, ok: true, value: [] })
  socket.close()
})

test('static files never escape the renderer folder', async ({ attune }) => {
  for (const path of ['/..%2f..%2fpackage.json', '/%2e%2e/%2e%2e/package.json', '/../../package.json']) {
    const response = await fetch(`${attune.origin}${path}`)
    expect(response.status, path).toBe(404)
  }
  const index = await fetch(`${attune.origin}/`)
  expect(index.headers.get('content-security-policy')).toContain("default-src 'self'")
})
