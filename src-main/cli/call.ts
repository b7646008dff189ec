import type { OperationName, RequestOf, ResponseOf } from '../contract/api'
import { ApiError } from '../contract/errors'
import type { Router } from '../services/router'

/** Calls an operation through the same router the app uses, unwrapping the envelope. */
export async function callOrThrow<K extends OperationName>(router: Router, op: K, request: RequestOf<K>): Promise<ResponseOf<K>> {
  const result = await router.call(op, request, { transport: 'direct' })
  if (!result.ok) throw ApiError.fromShape(result.error)
  return result.value as ResponseOf<K>
}
