import { operationNames, type AttuneApi, type CallResult, type OperationName } from '../../src-main/contract/api'
import { ApiError } from '../../src-main/contract/errors'

/** Sends one operation over a transport and resolves to the services' envelope. */
export type CallOperation = (op: OperationName, request: unknown) => Promise<CallResult>

/**
 * Builds an AttuneApi from a transport's call and subscribe functions: one function per
 * operation in the contract, each turning a failed envelope into a thrown ApiError so the
 * views can simply `await` and `catch`.
 */
export function makeAttuneApi(call: CallOperation, on: AttuneApi['on']): AttuneApi {
  const operations = Object.fromEntries(
    operationNames.map((op) => [op, async (request: unknown) => unwrap(await call(op, request))]),
  )
  // Object.fromEntries forgets which function belongs to which name; every entry forwards its
  // own name to `call`, so each has exactly the signature AttuneApi gives that operation.
  return { ...(operations as Omit<AttuneApi, 'on'>), on }
}

function unwrap(result: CallResult): unknown {
  if (result.ok) return result.value
  throw ApiError.fromShape(result.error)
}
