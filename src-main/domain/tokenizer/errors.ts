/**
 * A model folder's tokenizer files cannot be used. `file` is the file the message is about, so
 * the CLI and the app can point at it; the message says what is wrong and what to do.
 */
export class TokenizerFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.name = 'TokenizerFileError'
  }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
