/** A problem with what the user asked for: printed as one plain sentence, exit code 1. */
export class UserError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UserError'
  }
}
