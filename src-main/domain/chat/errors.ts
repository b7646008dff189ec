/**
 * Why a conversation could not be rendered or tokenized: the messages are not a conversation
 * Attune can use (INVALID_MESSAGES), the model has no chat template (NO_TEMPLATE), its template
 * cannot be parsed (TEMPLATE_INVALID) or raised an error for these messages (TEMPLATE_FAILED),
 * or its renderings do not line up, so the assistant's tokens cannot be found (NOT_PREFIX_STABLE).
 */
export type ChatErrorCode = 'INVALID_MESSAGES' | 'NO_TEMPLATE' | 'TEMPLATE_INVALID' | 'TEMPLATE_FAILED' | 'NOT_PREFIX_STABLE'

export class ChatError extends Error {
  constructor(
    readonly code: ChatErrorCode,
    message: string,
    /** For INVALID_MESSAGES: the index of the message at fault, when one is. */
    readonly messageIndex?: number,
  ) {
    super(message)
    this.name = 'ChatError'
  }
}
