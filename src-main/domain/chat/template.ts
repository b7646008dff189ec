import { readFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { Template } from '@huggingface/jinja'
import { z } from 'zod'
import { messageOf, TokenizerFileError } from '../tokenizer/errors'
import { readOptionalJson } from '../tokenizer/model-files'
import { ChatError } from './errors'

/** A model's chat template, parsed once. */
export interface ChatTemplate {
  /** The model's name (its folder's), for messages. */
  readonly model: string
  /** Where the template came from, for messages. */
  readonly source: string
  readonly text: string
  readonly compiled: Template
}

export function parseChatTemplate(text: string, origin: { model: string; source: string }): ChatTemplate {
  try {
    return { ...origin, text, compiled: new Template(text) }
  } catch (err) {
    throw new ChatError('TEMPLATE_INVALID', `The chat template of ${origin.model} (${origin.source}) cannot be parsed: ${messageOf(err)}.`)
  }
}

// tokenizer_config.json holds one template, or several by name ("default", "tool_use", …).
const tokenizerConfigTemplate = z.looseObject({
  chat_template: z.union([z.string(), z.array(z.looseObject({ name: z.string(), template: z.string() }))]).nullish(),
})

/**
 * The model folder's chat template, as transformers picks it: chat_template.jinja when present,
 * else tokenizer_config.json's chat_template (the one named "default" from a list). Null when
 * the model has none (a base model).
 */
export function findChatTemplate(modelDir: string): ChatTemplate | null {
  const model = basename(modelDir)
  const jinjaPath = join(modelDir, 'chat_template.jinja')
  const jinja = readTextIfPresent(jinjaPath)
  if (jinja !== undefined) return parseChatTemplate(jinja, { model, source: jinjaPath })

  const configPath = join(modelDir, 'tokenizer_config.json')
  const template = readOptionalJson(modelDir, 'tokenizer_config.json', tokenizerConfigTemplate)?.chat_template
  if (template == null) return null
  if (typeof template === 'string') return parseChatTemplate(template, { model, source: configPath })
  const named = template.find((t) => t.name === 'default')
  if (!named) {
    const names = template.map((t) => JSON.stringify(t.name)).join(', ')
    throw new ChatError('TEMPLATE_INVALID', `${configPath} has chat templates named ${names || '(none)'} but none named "default", which is the one Attune uses.`)
  }
  return parseChatTemplate(named.template, { model, source: `${configPath} (chat_template "default")` })
}

/** Like findChatTemplate, for when the model must have one (chat data, --messages). */
export function loadChatTemplate(modelDir: string): ChatTemplate {
  const template = findChatTemplate(modelDir)
  if (!template) {
    throw new ChatError(
      'NO_TEMPLATE',
      `${basename(modelDir)} has no chat template (no chat_template.jinja, and no chat_template in tokenizer_config.json), so it cannot take messages: use an instruct model, or text or prompt-completion data.`,
    )
  }
  return template
}

function readTextIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new TokenizerFileError(path, `${path} could not be read (${messageOf(err)}).`, { cause: err })
  }
}
