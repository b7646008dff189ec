import { afterEach, describe, expect, it } from 'vitest'
import type { AttuneBridge } from '../../src-main/contract/api'
import { ApiError } from '../../src-main/contract/errors'
import { apiSocketUrl, takeAccessToken } from '../../src-renderer/api/access-token'
import { chooseTransport } from '../../src-renderer/api/transport'
import { sampleApp } from './fake-api'

afterEach(() => {
  delete window.attuneBridge
  sessionStorage.clear()
  history.replaceState(null, '', '/')
})

describe('access token', () => {
  it('takes the token from the link, keeps it for reloads and removes it from the address bar', () => {
    history.replaceState(null, '', '/?token=abc-123&lang=en#/library')
    expect(takeAccessToken()).toBe('abc-123')
    expect(location.search).toBe('?lang=en')
    expect(location.hash).toBe('#/library')

    // A reload: the address no longer has it, this tab's storage does.
    expect(takeAccessToken()).toBe('abc-123')
  })

  it('prefers a new link over the token kept from an earlier one', () => {
    history.replaceState(null, '', '/?token=old')
    takeAccessToken()
    history.replaceState(null, '', '/?token=new')
    expect(takeAccessToken()).toBe('new')
  })

  it('has no token when the page was opened without the link', () => {
    expect(takeAccessToken()).toBeUndefined()
  })

  it('addresses the API socket on the host that served the page', () => {
    expect(apiSocketUrl({ protocol: 'http:', host: '127.0.0.1:7860' }, 'a/b+c')).toBe('ws://127.0.0.1:7860/api?token=a%2Fb%2Bc')
    expect(apiSocketUrl({ protocol: 'https:', host: 'gpu-box:443' }, 't')).toBe('wss://gpu-box:443/api?token=t')
  })
})

describe('choosing the transport', () => {
  it('asks for the printed link in a browser page opened without a token', () => {
    expect(chooseTransport()).toEqual({ kind: 'missing-token' })
  })

  it('uses the Electron bridge when the preload put one on the page, unwrapping its envelopes', async () => {
    const bridge: AttuneBridge = {
      appInfo: async () => ({ ok: true, value: sampleApp }),
      systemInfo: async () => ({ ok: false, error: { code: 'ENGINE_UNAVAILABLE', message: 'The engine stopped.' } }),
      engineState: async () => ({ ok: true, value: { state: 'ready' } }),
      runsList: async () => ({ ok: true, value: [] }),
      on: () => () => {},
    }
    window.attuneBridge = bridge
    const transport = chooseTransport()
    if (transport.kind === 'missing-token') throw new Error('expected the Electron transport')

    expect(transport.kind).toBe('electron')
    expect(transport.connection.value).toBe('open')
    await expect(transport.api.appInfo({})).resolves.toEqual(sampleApp)
    const error = await transport.api.systemInfo({}).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ code: 'ENGINE_UNAVAILABLE', message: 'The engine stopped.' })
  })
})
