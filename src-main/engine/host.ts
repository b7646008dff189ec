// The engine host: the main process's handle on the engine worker. It starts the worker on the
// first call, sends typed calls, streams their progress, cancels them through an AbortSignal and,
// when the worker dies, fails the calls in flight and starts a fresh worker on the next call.
import { ApiError } from '../contract/errors'
import type { EngineStatus } from '../contract/system'
import { WorkerMessage, type EngineMethod, type HostMessage, type ParamsOf, type ProgressOf, type ResultOf } from './protocol'
import { forkSpawner, type WorkerExit, type WorkerHandle, type WorkerSpawner } from './spawner'

// One import for users of the engine: the host and the way to start its worker outside Electron.
export { defaultWorkerPath, forkSpawner, type WorkerSpawner } from './spawner'

export interface EngineHostOptions {
  /** How to start the worker; forkSpawner() (out/main/engine-worker.js) when left out. */
  spawner?: WorkerSpawner
  /** Every state change: feeds the API's `engineStatus` event. */
  onStatus?: (status: EngineStatus) => void
  /** A worker that has not said `ready` by then is killed and its calls fail. */
  startTimeoutMs?: number
}

export interface CallOptions<P> {
  onProgress?: (progress: P) => void
  /** Aborting sends a cancel; the call then rejects with code CANCELLED once the engine has stopped it. */
  signal?: AbortSignal
}

interface PendingCall {
  resolve(value: unknown): void
  reject(error: ApiError): void
  progress(data: unknown): void
  /** Detaches the AbortSignal listener. */
  done(): void
}

/** One worker process and what is in flight on it. */
class Session {
  ready = false
  /** Messages held until the worker says it is ready. */
  readonly outbox: HostMessage[] = []
  readonly pending = new Map<number, PendingCall>()
  /** Why the host itself ended this worker, when it did. */
  endedBy: 'dispose' | 'start-timeout' | undefined
  startTimer: ReturnType<typeof setTimeout> | undefined
  readonly exited: Promise<void>
  markExited: () => void = () => {}

  constructor(readonly handle: WorkerHandle) {
    this.exited = new Promise((resolve) => (this.markExited = resolve))
  }
}

const DEFAULT_START_TIMEOUT_MS = 30_000

export class EngineHost {
  private readonly spawner: WorkerSpawner
  private readonly onStatus: (status: EngineStatus) => void
  private readonly startTimeoutMs: number
  private session: Session | undefined
  private nextId = 0
  private disposed = false
  private current: EngineStatus = { state: 'stopped' }

  constructor(options: EngineHostOptions = {}) {
    this.spawner = options.spawner ?? forkSpawner()
    this.onStatus = options.onStatus ?? (() => {})
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS
  }

  get status(): EngineStatus {
    return this.current
  }

  /** The worker's process id while one runs. */
  get pid(): number | undefined {
    return this.session?.handle.pid
  }

  call<M extends EngineMethod>(method: M, params: ParamsOf<M>, options: CallOptions<ProgressOf<M>> = {}): Promise<ResultOf<M>> {
    if (this.disposed) return Promise.reject(new ApiError('ENGINE_UNAVAILABLE', 'The engine has been shut down'))
    const { signal, onProgress } = options
    if (signal?.aborted) return Promise.reject(new ApiError('CANCELLED', 'The operation was cancelled'))
    let session: Session
    try {
      session = this.session ?? this.start()
    } catch (error) {
      return Promise.reject(error)
    }
    const id = this.nextId++
    return new Promise<ResultOf<M>>((resolve, reject) => {
      const onAbort = () => this.send(session, { type: 'cancel', id })
      signal?.addEventListener('abort', onAbort, { once: true })
      session.pending.set(id, {
        resolve: resolve as (value: unknown) => void,
        reject,
        progress: (data) => this.deliverProgress(session, id, () => onProgress?.(data as ProgressOf<M>)),
        done: () => signal?.removeEventListener('abort', onAbort),
      })
      this.send(session, { type: 'call', id, method, params })
    })
  }

  /** Stops the worker and fails the calls in flight; the host accepts no calls afterwards. */
  async dispose(): Promise<void> {
    this.disposed = true
    const session = this.session
    if (!session) return
    session.endedBy = 'dispose'
    session.handle.kill()
    await session.exited
  }

  private start(): Session {
    this.setStatus({ state: 'starting' })
    // Both spawners report events asynchronously, so `session` is set before the first one.
    let session: Session | undefined
    try {
      const handle = this.spawner.spawn({
        message: (raw) => session && this.receive(session, raw),
        exit: (exit) => session && this.ended(session, exit),
      })
      session = new Session(handle)
    } catch (error) {
      const apiError = error instanceof ApiError ? error : new ApiError('ENGINE_UNAVAILABLE', `The engine could not be started: ${String(error)}`)
      this.setStatus({ state: 'crashed', reason: apiError.message })
      throw apiError
    }
    const started = session
    started.startTimer = setTimeout(() => {
      started.endedBy = 'start-timeout'
      started.handle.kill()
    }, this.startTimeoutMs)
    this.session = started
    return started
  }

  private send(session: Session, message: HostMessage): void {
    if (session.ready) session.handle.send(message)
    else session.outbox.push(message)
  }

  private receive(session: Session, raw: unknown): void {
    const parsed = WorkerMessage.safeParse(raw)
    if (!parsed.success) {
      console.error('engine host: ignored a malformed message from the worker:', parsed.error.message)
      return
    }
    const message = parsed.data
    if (message.type === 'ready') {
      clearTimeout(session.startTimer)
      session.ready = true
      for (const queued of session.outbox.splice(0)) session.handle.send(queued)
      this.setStatus({ state: 'ready' })
      return
    }
    const call = session.pending.get(message.id)
    if (!call) return // already settled, e.g. its progress handler threw
    if (message.type === 'progress') {
      call.progress(message.data)
      return
    }
    session.pending.delete(message.id)
    call.done()
    if (message.type === 'result') call.resolve(message.value)
    else call.reject(ApiError.fromShape(message.error))
  }

  /** Runs the caller's progress handler; if it throws, the call fails with that error and is cancelled. */
  private deliverProgress(session: Session, id: number, deliver: () => void): void {
    try {
      deliver()
    } catch (error) {
      const call = session.pending.get(id)
      session.pending.delete(id)
      call?.done()
      call?.reject(new ApiError('INTERNAL', `The progress handler failed: ${error instanceof Error ? error.message : String(error)}`))
      this.send(session, { type: 'cancel', id })
    }
  }

  private ended(session: Session, exit: WorkerExit): void {
    clearTimeout(session.startTimer)
    if (this.session === session) this.session = undefined
    const error = this.endError(session, exit)
    for (const call of session.pending.values()) {
      call.done()
      call.reject(error)
    }
    session.pending.clear()
    this.setStatus(session.endedBy === 'dispose' ? { state: 'stopped' } : { state: 'crashed', reason: error.message })
    session.markExited()
  }

  /** What the calls still in flight on an ended worker fail with. */
  private endError(session: Session, exit: WorkerExit): ApiError {
    if (session.endedBy === 'dispose') return new ApiError('ENGINE_UNAVAILABLE', 'The engine was shut down')
    if (session.endedBy === 'start-timeout') {
      return new ApiError('ENGINE_UNAVAILABLE', `The engine did not start within ${this.startTimeoutMs / 1000} s and was stopped`)
    }
    return new ApiError('ENGINE_UNAVAILABLE', `The engine stopped unexpectedly (${describeExit(exit)}); it will restart on the next request`)
  }

  private setStatus(status: EngineStatus): void {
    this.current = status
    this.onStatus(status)
  }
}

function describeExit(exit: WorkerExit): string {
  if (exit.error) return `it could not be started: ${exit.error}`
  if (exit.signal) return `killed by signal ${exit.signal}`
  return `exit code ${exit.code ?? 'unknown'}`
}
