import { createPinia } from 'pinia'
import { ref } from 'vue'
import type { AttuneApi, EventName, EventOf } from '../../src-main/contract/api'
import type { RunSummary } from '../../src-main/contract/runs'
import type { AppInfo, SystemInfo } from '../../src-main/contract/system'
import type { ConnectionState } from '../../src-renderer/api/ws-client'
import { apiKey, connectionKey } from '../../src-renderer/composables/useApi'

export type FakeApi = AttuneApi & {
  /** Delivers an event to the listeners the components registered. */
  emit<E extends EventName>(event: E, payload: EventOf<E>): void
  listenerCount(event: EventName): number
}

export const sampleApp: AppInfo = {
  version: '0.1.0',
  homeDir: '/home/ada/Attune',
  databasePath: '/home/ada/Attune/attune.db',
  transport: 'ipc',
}

export const systemWithGpu: SystemInfo = {
  cpu: { model: 'AMD Ryzen 9 7950X 16-Core Processor', threads: 32 },
  memory: { totalBytes: 64 * 1024 ** 3, availableBytes: 40 * 1024 ** 3 },
  os: { platform: 'linux', arch: 'x64' },
  engine: { version: '0.1.0', backends: ['cpu', 'cuda'] },
  cuda: {
    usable: true,
    compiled: true,
    driverVersion: '13.0',
    runtimeVersion: '12.8',
    devices: [{ index: 0, name: 'NVIDIA GeForce RTX 4090', memoryBytes: 24 * 1024 ** 3, computeCapability: '8.9' }],
  },
}

export const systemWithoutGpu: SystemInfo = {
  ...systemWithGpu,
  engine: { version: '0.1.0', backends: ['cpu'] },
  cuda: { usable: false, compiled: true, reason: 'No NVIDIA driver was found (libcuda.so.1 could not be loaded).', devices: [] },
}

export function sampleRun(overrides: Partial<RunSummary> = {}): RunSummary {
  return {
    id: 'run-1',
    name: 'support-bot-v1',
    method: 'qlora',
    status: 'completed',
    baseModel: 'Qwen/Qwen2.5-0.5B-Instruct',
    dataset: 'support-chats.jsonl',
    createdAt: '2026-03-01T10:30:00.000Z',
    finishedAt: '2026-03-01T11:00:00.000Z',
    steps: 1200,
    lastLoss: 1.23456,
    error: null,
    ...overrides,
  }
}

/** A test double of the transport: answers from the given functions, events on demand. */
export function fakeApi(operations: Partial<Omit<AttuneApi, 'on'>> = {}): FakeApi {
  const listeners = new Map<EventName, Set<(payload: never) => void>>()
  return {
    appInfo: async () => sampleApp,
    systemInfo: async () => systemWithGpu,
    engineState: async () => ({ state: 'stopped' }),
    runsList: async () => [],
    ...operations,
    on(event, listener) {
      let set = listeners.get(event)
      if (!set) listeners.set(event, (set = new Set()))
      set.add(listener)
      return () => void set.delete(listener)
    },
    emit(event, payload) {
      for (const listener of listeners.get(event) ?? []) (listener as (payload: unknown) => void)(payload)
    },
    listenerCount: (event) => listeners.get(event)?.size ?? 0,
  }
}

/** Mounting options that give components a fresh Pinia, the fake API and a connection state. */
export function withApi(api: AttuneApi, connection = ref<ConnectionState>('open')) {
  return { global: { plugins: [createPinia()], provide: { [apiKey]: api, [connectionKey]: connection } } }
}
