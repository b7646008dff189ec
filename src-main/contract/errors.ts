import { z } from 'zod'

/** Every failure that crosses the API carries one of these codes, so the UI can react by kind. */
export const ApiErrorCode = z.enum([
  'INVALID_REQUEST', // the payload did not match the contract's schema
  'UNKNOWN_OPERATION', // no such operation in the contract
  'NOT_FOUND',
  'ENGINE_UNAVAILABLE', // the engine worker could not be started or died mid-call
  'CANCELLED',
  'USER_ERROR', // bad input from the user: the message says what to do
  'OUT_OF_MEMORY', // the GPU had too little free memory; the message gives needed and free bytes
  'INTERNAL',
])
export type ApiErrorCode = z.infer<typeof ApiErrorCode>

export const ApiErrorShape = z.object({
  code: ApiErrorCode,
  message: z.string(),
  /** Which field or item was wrong, when there is one (e.g. a schema path). */
  details: z.array(z.string()).optional(),
})
export type ApiErrorShape = z.infer<typeof ApiErrorShape>

/** An error thrown by services and transports; serialised as ApiErrorShape on the wire. */
export class ApiError extends Error {
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly details?: string[],
  ) {
    super(message)
    this.name = 'ApiError'
  }

  toShape(): ApiErrorShape {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message }
  }

  static fromShape(shape: ApiErrorShape): ApiError {
    return new ApiError(shape.code, shape.message, shape.details)
  }
}
