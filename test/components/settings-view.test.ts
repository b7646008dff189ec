import { flushPromises, mount } from '@vue/test-utils'
import { describe, expect, it, vi } from 'vitest'
import SettingsView from '../../src-renderer/views/SettingsView.vue'
import { fakeApi, sampleApp, systemWithGpu, systemWithoutGpu, withApi } from './fake-api'

const text = (view: ReturnType<typeof mount>, testid: string) => view.get(`[data-testid="${testid}"]`).text()

describe('Settings: System panel', () => {
  it('shows the processor, memory, system, engine and each GPU', async () => {
    const view = mount(SettingsView, withApi(fakeApi({ systemInfo: async () => systemWithGpu })))
    await flushPromises()

    expect(text(view, 'system-cpu-model')).toBe('AMD Ryzen 9 7950X 16-Core Processor')
    expect(text(view, 'system-cpu-threads')).toBe('32')
    expect(text(view, 'system-memory')).toBe('64.0 GB · 40.0 GB free now')
    expect(text(view, 'system-os')).toBe('Linux (x64)')
    expect(text(view, 'system-engine')).toBe('Version 0.1.0 · runs on CPU and CUDA')
    expect(text(view, 'system-gpu-status')).toBe('1 GPU available')
    expect(view.find('[data-testid="system-gpu-reason"]').exists()).toBe(false)
    const devices = view.findAll('[data-testid="system-gpu-device"]')
    expect(devices.map((device) => device.text())).toEqual([
      'NVIDIA GeForce RTX 4090 · 24.0 GB of memory · compute capability 8.9',
    ])
    expect(text(view, 'system-gpu-driver')).toBe('CUDA driver 13.0 · CUDA runtime 12.8')
  })

  it('says there is no GPU and gives the engine’s exact reason', async () => {
    const view = mount(SettingsView, withApi(fakeApi({ systemInfo: async () => systemWithoutGpu })))
    await flushPromises()

    expect(text(view, 'system-gpu-status')).toBe('No GPU available')
    expect(text(view, 'system-gpu-reason')).toBe(systemWithoutGpu.cuda.reason)
    expect(view.find('[data-testid="system-gpu-devices"]').exists()).toBe(false)
    expect(text(view, 'system-engine')).toBe('Version 0.1.0 · runs on CPU')
  })

  it('shows where the files and the database are', async () => {
    const view = mount(SettingsView, withApi(fakeApi({ appInfo: async () => ({ ...sampleApp, transport: 'websocket' }) })))
    await flushPromises()

    expect(text(view, 'app-home-dir')).toBe('/home/ada/Attune')
    expect(text(view, 'app-database-path')).toBe('/home/ada/Attune/attune.db')
    expect(text(view, 'app-version')).toBe('0.1.0')
    expect(text(view, 'app-transport')).toBe('a browser page served by attune serve')
  })

  it('shows the error and reads again on Retry', async () => {
    const systemInfo = vi.fn().mockRejectedValueOnce(new Error('The engine did not start.')).mockResolvedValueOnce(systemWithoutGpu)
    const view = mount(SettingsView, withApi(fakeApi({ systemInfo })))
    await flushPromises()
    expect(text(view, 'load-error-message')).toBe('The engine did not start.')

    await view.get('[data-testid="retry"]').trigger('click')
    await flushPromises()
    expect(systemInfo).toHaveBeenCalledTimes(2)
    expect(text(view, 'system-gpu-status')).toBe('No GPU available')
  })
})
