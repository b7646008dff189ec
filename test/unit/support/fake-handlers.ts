import type { Handlers } from '../../../src-main/services/router'

/** Handlers with fixed answers, for testing the router and transports apart from the services. */
export function fakeHandlers(overrides: Partial<Handlers> = {}): Handlers {
  return {
    appInfo: async (_request, context) => ({ version: '0.0.0-test', homeDir: '/tmp/attune-home', databasePath: '/tmp/attune-home/attune.db', transport: context.transport }),
    systemInfo: async () => ({
      cpu: { model: 'Test CPU', threads: 4 },
      memory: { totalBytes: 8e9, availableBytes: 4e9 },
      os: { platform: 'linux', arch: 'x64' },
      engine: { version: '0.0.0', backends: ['cpu'] },
      cuda: { usable: false, compiled: false, reason: 'no GPU in tests', devices: [] },
    }),
    engineState: async () => ({ state: 'ready' }),
    runsList: async (request) =>
      Array.from({ length: Math.min(request.limit ?? 2, 2) }, (_, index) => ({
        id: `run-${index}`,
        name: `Run ${index}`,
        method: 'lora' as const,
        status: 'completed' as const,
        baseModel: 'tiny-llama',
        dataset: 'sample.jsonl',
        createdAt: '2026-11-22T00:00:00.000Z',
        finishedAt: null,
        steps: 10,
        lastLoss: 1.5,
        error: null,
      })),
    ...overrides,
  }
}
