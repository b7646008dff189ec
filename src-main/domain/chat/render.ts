import { messageOf } from '../tokenizer/errors'
import { ChatError } from './errors'
import { validateMessages, type ChatMessage } from './messages'
import type { ChatTemplate } from './template'

export interface RenderChatOptions {
  /** End with the header of an assistant turn, for the model to write it. */
  addGenerationPrompt: boolean
  /**
   * The special tokens under the names transformers gives the template: bos_token, eos_token,
   * unk_token, pad_token, …, additional_special_tokens (a ModelTokenizer's specialTokens.named).
   */
  specialTokens?: Readonly<Record<string, string | readonly string[]>>
}

/** Renders messages as transformers' apply_chat_template(tokenize=False) does. */
export function renderChat(template: ChatTemplate, messages: readonly ChatMessage[], options: RenderChatOptions): string {
  const checked = validateMessages(messages, { allowEmpty: true })
  try {
    return template.compiled.render({
      ...options.specialTokens,
      messages: checked,
      add_generation_prompt: options.addGenerationPrompt,
      // transformers passes these as None when not given; templates test `tools is not none`.
      tools: null,
      documents: null,
    })
  } catch (err) {
    throw new ChatError('TEMPLATE_FAILED', `The chat template of ${template.model} could not render these messages: ${messageOf(err)}`)
  }
}
