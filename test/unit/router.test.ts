import { describe, expect, it } from 'vitest'
import { ApiError } from '../../src-main/contract/errors'
import { Router } from '../../src-main/services/router'
import { fakeHandlers } from './support/fake-handlers'

const direct = { transport: 'direct' as const }

function routerWith(overrides: Parameters<typeof fakeHandlers>[0] = {}) {
  const logged: string[] = []
  return { router: new Router(fakeHandlers(overrides), (message) => logged.push(message)), logged }
}

describe('Router', () => {
  it('dispatches a valid request and returns the validated answer', async () => {
    const { router } = routerWith()
    expect(await router.call('appInfo', {}, direct)).toMatchObject({ ok: true, value: { transport: 'direct' } })
    const runs = await router.call('runsList', { limit: 1 }, direct)
    expect(runs.ok && (runs.value as unknown[]).length).toBe(1)
  })

  it('treats a missing request as an empty one', async () => {
    const { router } = routerWith()
    expect((await router.call('appInfo', undefined, direct)).ok).toBe(true)
  })

  it('refuses a request that breaks the schema, naming the field, and logs it', async () => {
    const { router, logged } = routerWith()
    const result = await router.call('runsList', { limit: -3 }, direct)
    expect(result).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } })
    expect(!result.ok && result.error.details?.[0]).toMatch(/^limit:/)
    expect(logged.join('\n')).toContain('invalid request for runsList')
  })

  it('refuses unknown fields, wrong types and non-objects', async () => {
    const { router } = routerWith()
    for (const request of [{ extra: 1 }, 'text', 42, [], { limit: '5' }]) {
      const result = await router.call(request === 42 ? 'appInfo' : 'runsList', request, direct)
      expect(result.ok, JSON.stringify(request)).toBe(false)
    }
  })

  it('refuses an unknown operation, including inherited names', async () => {
    const { router } = routerWith()
    for (const op of ['dropDatabase', 'toString', '__proto__', 'constructor']) {
      expect(await router.call(op, {}, direct)).toMatchObject({ ok: false, error: { code: 'UNKNOWN_OPERATION' } })
    }
  })

  it('passes an ApiError through with its code', async () => {
    const { router } = routerWith({
      systemInfo: async () => {
        throw new ApiError('ENGINE_UNAVAILABLE', 'The engine stopped unexpectedly.')
      },
    })
    expect(await router.call('systemInfo', {}, direct)).toEqual({ ok: false, error: { code: 'ENGINE_UNAVAILABLE', message: 'The engine stopped unexpectedly.' } })
  })

  it('turns any other failure into INTERNAL and logs the stack', async () => {
    const { router, logged } = routerWith({
      appInfo: async () => {
        throw new TypeError('boom')
      },
    })
    expect(await router.call('appInfo', {}, direct)).toMatchObject({ ok: false, error: { code: 'INTERNAL', message: 'boom' } })
    expect(logged.join('\n')).toContain('TypeError: boom')
  })

  it('never sends an answer that breaks the contract', async () => {
    const { router, logged } = routerWith({ appInfo: async () => ({ version: 1 }) as never })
    expect(await router.call('appInfo', {}, direct)).toMatchObject({ ok: false, error: { code: 'INTERNAL' } })
    expect(logged.join('\n')).toContain('outside the contract')
  })
})
