import { describe, expect, it } from 'vitest'
import { engineMethods, HostMessage, isEngineMethod, WorkerMessage } from '../../src-main/engine/protocol'

describe('engine protocol messages', () => {
  it('accepts well-formed host messages and rejects malformed ones', () => {
    expect(HostMessage.safeParse({ type: 'call', id: 1, method: 'systemInfo', params: {} }).success).toBe(true)
    expect(HostMessage.safeParse({ type: 'cancel', id: 1 }).success).toBe(true)
    expect(HostMessage.safeParse({ type: 'cancel', id: -1 }).success).toBe(false)
    expect(HostMessage.safeParse({ type: 'call', id: 1.5, method: 'systemInfo', params: {} }).success).toBe(false)
    expect(HostMessage.safeParse({ type: 'call', id: 1, params: {} }).success).toBe(false)
    expect(HostMessage.safeParse({ type: 'shutdown' }).success).toBe(false)
    expect(HostMessage.safeParse('call').success).toBe(false)
  })

  it('accepts well-formed worker messages and requires error shapes with known codes', () => {
    expect(WorkerMessage.safeParse({ type: 'ready' }).success).toBe(true)
    expect(WorkerMessage.safeParse({ type: 'result', id: 0, value: { gflops: 1 } }).success).toBe(true)
    expect(WorkerMessage.safeParse({ type: 'progress', id: 0, data: { fraction: 0.5, gflops: 1 } }).success).toBe(true)
    expect(WorkerMessage.safeParse({ type: 'error', id: 0, error: { code: 'CANCELLED', message: 'stop' } }).success).toBe(true)
    expect(WorkerMessage.safeParse({ type: 'error', id: 0, error: { code: 'SEGFAULT', message: 'x' } }).success).toBe(false)
    expect(WorkerMessage.safeParse({ type: 'error', id: 0, error: 'boom' }).success).toBe(false)
  })
})

describe('engine method table', () => {
  it('knows its methods and nothing inherited from Object', () => {
    expect(isEngineMethod('systemInfo')).toBe(true)
    expect(isEngineMethod('cpuBenchmark')).toBe(true)
    expect(isEngineMethod('toString')).toBe(false)
    expect(isEngineMethod('__proto__')).toBe(false)
  })

  it('validates cpuBenchmark params: a duration in (0, 600] seconds and nothing else', () => {
    const params = engineMethods.cpuBenchmark.params
    expect(params.safeParse({ seconds: 2 }).success).toBe(true)
    expect(params.safeParse({ seconds: 0 }).success).toBe(false)
    expect(params.safeParse({ seconds: 601 }).success).toBe(false)
    expect(params.safeParse({ seconds: Number.NaN }).success).toBe(false)
    expect(params.safeParse({ seconds: '2' }).success).toBe(false)
    expect(params.safeParse({ seconds: 2, threads: 4 }).success).toBe(false)
    expect(engineMethods.systemInfo.params.safeParse({}).success).toBe(true)
    expect(engineMethods.systemInfo.params.safeParse({ verbose: true }).success).toBe(false)
  })
})
