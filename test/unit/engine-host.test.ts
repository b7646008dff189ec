// The engine host against the real native addon in a real worker process: no mocks.
import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { afterEach, describe, expect, inject, it } from 'vitest'
import { ApiError } from '../../src-main/contract/errors'
import { SystemInfo, type EngineStatus } from '../../src-main/contract/system'
import { EngineHost, forkSpawner } from '../../src-main/engine/host'
import type { CpuBenchmarkProgress, EngineMethod } from '../../src-main/engine/protocol'

const workerPath = inject('engineWorkerPath')
if (!workerPath) {
  throw new Error('engineWorkerPath was not provided: register test/unit/engine-global-setup.ts as globalSetup of the unit project in vitest.config.ts')
}

let host: EngineHost | undefined
afterEach(async () => {
  await host?.dispose()
  host = undefined
})

function startHost(statuses: EngineStatus[] = []): EngineHost {
  host = new EngineHost({ spawner: forkSpawner(workerPath), onStatus: (status) => statuses.push(status) })
  return host
}

/** The ApiError a promise rejects with (fails the test if it resolves or rejects with something else). */
async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => {
      throw new Error('expected the call to be rejected')
    },
    (reason: unknown) => reason,
  )
  expect(error).toBeInstanceOf(ApiError)
  return error as ApiError
}

/**
 * Starts a long benchmark and resolves once it is really running (its first progress arrived).
 * The call comes back wrapped: an async function returning a promise would wait for it.
 */
async function startLongBenchmark(engine: EngineHost, signal?: AbortSignal): Promise<{ call: Promise<unknown> }> {
  let running!: () => void
  const firstProgress = new Promise<void>((resolve) => (running = resolve))
  const call = engine.call('cpuBenchmark', { seconds: 60 }, { onProgress: () => running(), ...(signal ? { signal } : {}) })
  call.catch(() => {}) // observed by the test below; keeps Node from calling it unhandled meanwhile
  await firstProgress
  return { call }
}

describe('EngineHost', () => {
  it('reports this machine through systemInfo, starting the worker on the first call', async () => {
    const statuses: EngineStatus[] = []
    const engine = startHost(statuses)
    expect(engine.pid).toBeUndefined()
    const info = await engine.call('systemInfo', {})

    expect(SystemInfo.parse(info)).toEqual(info)
    expect(info.cpu.threads).toBe(availableParallelism())
    expect(info.cpu.model).not.toBe('')
    expect(info.memory.totalBytes).toBeGreaterThan(0)
    expect(info.os).toEqual({ platform: process.platform, arch: process.arch })
    expect(info.engine.backends).toContain('cpu')
    // Usable exactly when there is no reason; without an NVIDIA device node there is no GPU to use.
    expect(info.cuda.usable).toBe(info.cuda.reason === undefined)
    if (!existsSync('/dev/nvidiactl')) {
      expect(info.cuda.usable).toBe(false)
      expect(info.cuda.reason).toMatch(/^(No NVIDIA|This build of Attune has no CUDA support)/)
    }
    expect(statuses.map((s) => s.state)).toEqual(['starting', 'ready'])
    expect(engine.pid).toBeGreaterThan(0)
  })

  it('runs cpuBenchmark with throttled progress and a positive rate', async () => {
    const progress: CpuBenchmarkProgress[] = []
    const result = await startHost().call('cpuBenchmark', { seconds: 1 }, { onProgress: (p) => progress.push(p) })

    expect(result.gflops).toBeGreaterThan(0)
    expect(result.iterations).toBeGreaterThan(0)
    expect(result.seconds).toBeGreaterThanOrEqual(1)
    expect(progress.length).toBeGreaterThan(0)
    expect(progress.length).toBeLessThanOrEqual(11) // at most ~10 a second
    for (const [i, p] of progress.entries()) {
      expect(p.fraction).toBeGreaterThan(0)
      expect(p.fraction).toBeLessThan(1)
      expect(p.gflops).toBeGreaterThan(0)
      if (i > 0) expect(p.fraction).toBeGreaterThan(progress[i - 1]!.fraction)
    }
  })

  it('cancels through an AbortSignal and keeps the same worker usable', async () => {
    const engine = startHost()
    const controller = new AbortController()
    const { call } = await startLongBenchmark(engine, controller.signal)
    const pid = engine.pid
    const abortedAt = Date.now()
    controller.abort()

    const error = await rejection(call)
    expect(error.code).toBe('CANCELLED')
    expect(Date.now() - abortedAt).toBeLessThan(5_000)
    await expect(engine.call('systemInfo', {})).resolves.toBeDefined()
    expect(engine.pid).toBe(pid)
  })

  it('rejects an already aborted signal without calling the engine', async () => {
    const error = await rejection(startHost().call('systemInfo', {}, { signal: AbortSignal.abort() }))
    expect(error.code).toBe('CANCELLED')
    expect(host?.pid).toBeUndefined()
  })

  it('fails the call in flight when the worker is killed, then restarts it on the next call', async () => {
    const statuses: EngineStatus[] = []
    const engine = startHost(statuses)
    const { call } = await startLongBenchmark(engine)
    const firstPid = engine.pid!
    process.kill(firstPid, 'SIGKILL')

    const error = await rejection(call)
    expect(error.code).toBe('ENGINE_UNAVAILABLE')
    expect(error.message).toMatch(/stopped unexpectedly.*SIGKILL/)
    expect(engine.status.state).toBe('crashed')
    expect(engine.status.reason).toMatch(/SIGKILL/)

    const info = await engine.call('systemInfo', {})
    expect(info.cpu.threads).toBe(availableParallelism())
    expect(engine.pid).not.toBe(firstPid)
    expect(statuses.map((s) => s.state)).toEqual(['starting', 'ready', 'crashed', 'starting', 'ready'])
  })

  it('rejects an unknown method and invalid params cleanly, and stays usable', async () => {
    const engine = startHost()
    const unknown = await rejection(engine.call('formatDisk' as EngineMethod, {} as never))
    expect(unknown.code).toBe('UNKNOWN_OPERATION')
    expect(unknown.message).toContain('formatDisk')

    const invalid = await rejection(engine.call('cpuBenchmark', { seconds: -1 }))
    expect(invalid.code).toBe('INVALID_REQUEST')
    expect(invalid.details?.join()).toContain('seconds')

    await expect(engine.call('systemInfo', {})).resolves.toBeDefined()
    expect(engine.status.state).toBe('ready')
  })

  it('says how to fix a missing worker build', async () => {
    const statuses: EngineStatus[] = []
    host = new EngineHost({ spawner: forkSpawner('/nonexistent/engine-worker.js'), onStatus: (s) => statuses.push(s) })
    const error = await rejection(host.call('systemInfo', {}))
    expect(error.code).toBe('ENGINE_UNAVAILABLE')
    expect(error.message).toMatch(/not built.*npm run build/)
    expect(statuses.at(-1)?.state).toBe('crashed')
  })

  it('dispose stops the worker, fails calls in flight and refuses new ones', async () => {
    const statuses: EngineStatus[] = []
    const engine = startHost(statuses)
    const { call } = await startLongBenchmark(engine)
    await engine.dispose()

    expect((await rejection(call)).code).toBe('ENGINE_UNAVAILABLE')
    expect(engine.status.state).toBe('stopped')
    expect(engine.pid).toBeUndefined()
    expect((await rejection(engine.call('systemInfo', {}))).code).toBe('ENGINE_UNAVAILABLE')
  })
})
