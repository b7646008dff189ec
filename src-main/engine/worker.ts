// The engine worker: a child process (Electron's utilityProcess in the app, child_process.fork in
// the CLI, server and tests) that loads the native addon and answers the host's calls. A crash in
// native code ends this process only; the host reports it and starts a fresh worker.
import { ApiError } from '../contract/errors'
import { loadAddon, type EngineAddon, type NativeCancelToken } from './addon'
import { evaluate } from './tasks/evaluate'
import { generate } from './tasks/generate'
import { quantize } from './tasks/quantize'
import { train } from './tasks/train'
import {
  engineMethods,
  HostMessage,
  isEngineMethod,
  type CallMessage,
  type EngineMethod,
  type ParsedParamsOf,
  type ProgressOf,
  type ResultOf,
  type WorkerMessage,
} from './protocol'

type Handler<M extends EngineMethod> = (
  addon: EngineAddon,
  params: ParsedParamsOf<M>,
  onProgress: (data: ProgressOf<M>) => void,
  cancel: NativeCancelToken,
) => Promise<ResultOf<M>>

const handlers: { [M in EngineMethod]: Handler<M> } = {
  systemInfo: (addon) => addon.systemInfo(),
  cpuBenchmark: (addon, params, onProgress, cancel) => addon.cpuBenchmark(params.seconds, onProgress, cancel),
  generate,
  evaluate,
  train,
  quantize,
}

interface ParentChannel {
  send(message: WorkerMessage): void
  onMessage(listener: (message: unknown) => void): void
}

/** Electron's utilityProcess gives the child process.parentPort; child_process.fork gives process.send. */
interface ParentPort {
  postMessage(message: unknown): void
  on(event: 'message', listener: (event: { data: unknown }) => void): void
}

function connectToParent(): ParentChannel {
  const parentPort = (process as { parentPort?: ParentPort }).parentPort
  if (parentPort) {
    return { send: (message) => parentPort.postMessage(message), onMessage: (listener) => parentPort.on('message', (event) => listener(event.data)) }
  }
  const send = process.send?.bind(process)
  if (!send) throw new Error('The engine worker must be started by the engine host (child_process.fork or utilityProcess)')
  // A worker outliving its host would keep holding memory (and later the GPU): leave with it.
  process.on('disconnect', () => process.exit(0))
  return { send: (message) => send(message), onMessage: (listener) => process.on('message', listener) }
}

/** Native errors carry attune::StatusCode names; turn them into the API's codes. */
function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error
  const message = error instanceof Error ? error.message : String(error)
  const code = (error as { code?: unknown } | null)?.code
  if (code === 'CANCELLED') return new ApiError('CANCELLED', message)
  if (code === 'INVALID_ARGUMENT') return new ApiError('INVALID_REQUEST', message)
  if (code === 'OUT_OF_MEMORY') return new ApiError('OUT_OF_MEMORY', message)
  return new ApiError('INTERNAL', message)
}

class EngineWorker {
  /** Loaded on the first call, so that a missing build becomes that call's error, not a crash loop. */
  private addon: EngineAddon | undefined
  private readonly running = new Map<number, NativeCancelToken>()

  constructor(private readonly parent: ParentChannel) {}

  start(): void {
    this.parent.onMessage((raw) => this.receive(raw))
    this.parent.send({ type: 'ready' })
  }

  private receive(raw: unknown): void {
    const parsed = HostMessage.safeParse(raw)
    if (!parsed.success) {
      console.error('engine worker: ignored a malformed message from the host:', parsed.error.message)
      return
    }
    const message = parsed.data
    if (message.type === 'cancel') {
      this.running.get(message.id)?.cancel()
      return
    }
    void this.answer(message)
  }

  private async answer(call: CallMessage): Promise<void> {
    try {
      const value = await this.run(call)
      this.parent.send({ type: 'result', id: call.id, value })
    } catch (error) {
      this.parent.send({ type: 'error', id: call.id, error: toApiError(error).toShape() })
    }
  }

  private async run(call: CallMessage): Promise<unknown> {
    if (!isEngineMethod(call.method)) throw new ApiError('UNKNOWN_OPERATION', `The engine has no method "${call.method}"`)
    const spec = engineMethods[call.method]
    const params = spec.params.safeParse(call.params)
    if (!params.success) {
      const details = params.error.issues.map((issue) => `${issue.path.join('.') || '(params)'}: ${issue.message}`)
      throw new ApiError('INVALID_REQUEST', `Invalid parameters for ${call.method}`, details)
    }
    this.addon ??= loadAddon()
    const cancel = new this.addon.CancelToken()
    this.running.set(call.id, cancel)
    try {
      const handler = handlers[call.method] as Handler<EngineMethod>
      const onProgress = (data: unknown) => this.parent.send({ type: 'progress', id: call.id, data })
      const value = await handler(this.addon, params.data as ParsedParamsOf<EngineMethod>, onProgress, cancel)
      // A cancelled call reports CANCELLED even if it finished first: the caller has moved on.
      if (cancel.cancelled) throw new ApiError('CANCELLED', 'The operation was cancelled')
      const checked = spec.result.safeParse(value)
      if (!checked.success) {
        throw new ApiError('INTERNAL', `The native engine returned a malformed result for ${call.method}`, checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`))
      }
      return checked.data
    } finally {
      this.running.delete(call.id)
    }
  }
}

new EngineWorker(connectToParent()).start()
