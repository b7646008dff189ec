import { ChatError } from './errors'

export const chatRoles = ['system', 'user', 'assistant'] as const
export type ChatRole = (typeof chatRoles)[number]

export interface ChatMessage {
  role: ChatRole
  content: string
}

/**
 * Checks messages that come from outside (a dataset record, a --messages file, the app) and
 * returns them as role and content only, so that no stray field reaches the template. An empty
 * list is refused unless `allowEmpty` (templates render one: the generation prompt alone).
 */
export function validateMessages(messages: unknown, { allowEmpty = false } = {}): ChatMessage[] {
  if (!Array.isArray(messages) || (messages.length === 0 && !allowEmpty)) {
    throw new ChatError('INVALID_MESSAGES', 'messages must be a non-empty list of {"role", "content"} objects.')
  }
  return messages.map((message: unknown, index) => {
    const fail = (problem: string) => new ChatError('INVALID_MESSAGES', `message ${index + 1} ${problem}.`, index)
    if (typeof message !== 'object' || message === null || Array.isArray(message)) throw fail('is not an object with "role" and "content"')
    const { role, content } = message as Record<string, unknown>
    if (role === 'tool') throw fail('has role "tool": tool calls and results are not supported yet (roles: system, user, assistant)')
    if (typeof role !== 'string' || !(chatRoles as readonly string[]).includes(role)) {
      throw fail(`has ${role === undefined ? 'no role' : `role ${JSON.stringify(role)}`} (roles: system, user, assistant)`)
    }
    if (typeof content !== 'string') {
      throw fail(
        Array.isArray(content)
          ? 'has a list as content: content parts (images, multimodal input) are not supported, give the text as one string'
          : 'has no text content: "content" must be a string',
      )
    }
    return { role: role as ChatRole, content }
  })
}
