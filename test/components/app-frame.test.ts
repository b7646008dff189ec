import { flushPromises, mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import { nextTick, ref } from 'vue'
import { createMemoryHistory } from 'vue-router'
import type { ConnectionState } from '../../src-renderer/api/ws-client'
import App from '../../src-renderer/App.vue'
import { createAppRouter } from '../../src-renderer/router'
import { fakeApi, withApi, type FakeApi } from './fake-api'

const screenNames = ['models', 'data', 'train', 'chat', 'library', 'export', 'settings']

async function mountApp(path: string, api: FakeApi = fakeApi(), connection = ref<ConnectionState>('open')) {
  const router = createAppRouter(createMemoryHistory())
  const options = withApi(api, connection)
  const view = mount(App, { ...options, global: { ...options.global, plugins: [...options.global.plugins, router] } })
  await router.push(path)
  await flushPromises()
  return { view, router }
}

describe('app frame', () => {
  it('opens on Models and links every screen', async () => {
    const { view, router } = await mountApp('/')
    expect(router.currentRoute.value.path).toBe('/models')
    for (const name of screenNames) expect(view.get(`[data-testid="nav-${name}"]`).attributes('href')).toBe(`/${name}`)
    expect(view.get('[data-testid="nav-models"]').attributes('aria-current')).toBe('page')
    expect(view.get('[data-testid="screen-title"]').text()).toBe('Models')
    expect(view.get('[data-testid="screen-models"]').text()).toContain('Not built yet')
  })

  it('shows each screen from its link and marks it as the current one', async () => {
    const { view } = await mountApp('/models')
    for (const name of screenNames) {
      await view.get(`[data-testid="nav-${name}"]`).trigger('click')
      await flushPromises()
      expect(view.find(`[data-testid="screen-${name}"]`).exists()).toBe(true)
      expect(view.findAll('[aria-current="page"]').map((link) => link.attributes('data-testid'))).toEqual([`nav-${name}`])
    }
  })

  it('sends unknown addresses to Models', async () => {
    const { router } = await mountApp('/no/such/screen')
    expect(router.currentRoute.value.path).toBe('/models')
  })

  it('shows the engine state on load, then each change, and stops listening when closed', async () => {
    const api = fakeApi()
    const { view } = await mountApp('/models', api)
    const status = () => view.get('[data-testid="engine-status"]').text()
    await flushPromises()
    expect(status()).toBe('Engine idle')

    api.emit('engineStatus', { state: 'starting' })
    await nextTick()
    expect(status()).toBe('Engine starting…')
    api.emit('engineStatus', { state: 'ready' })
    await nextTick()
    expect(status()).toBe('Engine ready')
    api.emit('engineStatus', { state: 'crashed', reason: 'The worker was killed (out of memory).' })
    await nextTick()
    expect(status()).toBe('Engine stopped unexpectedly')
    expect(view.get('[data-testid="engine-status"] [title]').attributes('title')).toBe('The worker was killed (out of memory).')

    expect(api.listenerCount('engineStatus')).toBe(1)
    view.unmount()
    expect(api.listenerCount('engineStatus')).toBe(0)
  })

  it('says when the connection to Attune is lost', async () => {
    const connection = ref<ConnectionState>('open')
    const { view } = await mountApp('/models', fakeApi(), connection)
    expect(view.find('[data-testid="connection-banner"]').exists()).toBe(false)

    connection.value = 'lost'
    await nextTick()
    expect(view.get('[data-testid="connection-banner"]').text()).toContain('Connection to Attune lost — reconnecting…')

    connection.value = 'open'
    await nextTick()
    expect(view.find('[data-testid="connection-banner"]').exists()).toBe(false)
  })
})
