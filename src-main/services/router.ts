import type { z } from 'zod'
import { operations, type CallResult, type OperationName, type ResponseOf } from '../contract/api'
import { ApiError } from '../contract/errors'
import type { AppInfo } from '../contract/system'

/** How a call reached the services; `direct` is the CLI calling in-process. */
export type Transport = AppInfo['transport']

export interface CallContext {
  transport: Transport
}

/** One implementation per operation; requests arrive already validated and defaulted. */
export type Handlers = {
  [K in OperationName]: (request: z.output<(typeof operations)[K]['request']>, context: CallContext) => Promise<ResponseOf<K>>
}

export type RouterLog = (message: string) => void

function isOperation(op: string): op is OperationName {
  return Object.hasOwn(operations, op)
}

/**
 * Validates every request against the contract, dispatches it, validates the response, and turns
 * any failure into an error envelope. Both transports call only this, so they behave the same.
 */
export class Router {
  constructor(
    private readonly handlers: Handlers,
    private readonly log: RouterLog = (message) => console.warn(message),
  ) {}

  async call(op: string, request: unknown, context: CallContext): Promise<CallResult> {
    if (!isOperation(op)) {
      this.log(`attune: rejected call to unknown operation ${JSON.stringify(op)} over ${context.transport}`)
      return { ok: false, error: { code: 'UNKNOWN_OPERATION', message: `There is no operation named "${op}".` } }
    }
    const parsed = operations[op].request.safeParse(request ?? {})
    if (!parsed.success) {
      const details = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(request)'}: ${issue.message}`)
      this.log(`attune: invalid request for ${op} over ${context.transport}: ${details.join('; ')}`)
      return {
        ok: false,
        error: { code: 'INVALID_REQUEST', message: `The request for ${op} is not valid: ${details.join('; ')}`, details },
      }
    }
    try {
      const handler = this.handlers[op] as (request: unknown, context: CallContext) => Promise<unknown>
      const value = await handler(parsed.data, context)
      // A response that breaks the contract is our bug: report it rather than send bad data.
      const checked = operations[op].response.safeParse(value)
      if (!checked.success) {
        this.log(`attune: ${op} produced a response outside the contract: ${checked.error.message}`)
        return { ok: false, error: { code: 'INTERNAL', message: `Attune produced an invalid answer for ${op}; this is a bug.` } }
      }
      return { ok: true, value: checked.data }
    } catch (error) {
      if (error instanceof ApiError) return { ok: false, error: error.toShape() }
      this.log(`attune: ${op} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
      return { ok: false, error: { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) } }
    }
  }
}
