import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { z } from 'zod'
import { messageOf, TokenizerFileError } from './errors'

// The parts of a Hugging Face model folder's JSON files that tokenization and chat read. Objects
// are loose: these files carry many more keys, and the tokenizer library gets them untouched.

const tokenId = z.int().nonnegative()
/** `eos_token_id` is an int or a list of ints (Llama 3 instruct lists several). */
const tokenIds = z
  .union([tokenId, z.array(tokenId)])
  .nullish()
  .transform((ids) => (ids == null ? [] : Array.isArray(ids) ? ids : [ids]))
/** Older tokenizer_config.json files store a special token as a serialized AddedToken object. */
const tokenText = z.union([z.string(), z.looseObject({ content: z.string() })]).transform((t) => (typeof t === 'string' ? t : t.content))

export const tokenizerJsonSchema = z.looseObject({
  model: z.looseObject({ type: z.string().optional() }),
  added_tokens: z.array(z.looseObject({ id: tokenId, content: z.string(), special: z.boolean().optional() })).optional(),
})
export type TokenizerJson = z.infer<typeof tokenizerJsonSchema>

/** The special tokens transformers passes to chat templates under these names. */
export const namedSpecialTokens = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const

export const tokenizerConfigSchema = z.looseObject({
  bos_token: tokenText.nullish(),
  eos_token: tokenText.nullish(),
  unk_token: tokenText.nullish(),
  sep_token: tokenText.nullish(),
  pad_token: tokenText.nullish(),
  cls_token: tokenText.nullish(),
  mask_token: tokenText.nullish(),
  additional_special_tokens: z.array(tokenText).nullish(),
  clean_up_tokenization_spaces: z.boolean().nullish(),
})
export type TokenizerConfig = z.infer<typeof tokenizerConfigSchema>

/** generation_config.json and config.json name their BOS and EOS ids the same way. */
export const idsConfigSchema = z.looseObject({ bos_token_id: tokenId.nullish(), eos_token_id: tokenIds })
export type IdsConfig = z.infer<typeof idsConfigSchema>

/** Reads and checks a JSON file that the model folder must have. */
export function readRequiredJson<T>(modelDir: string, name: string, schema: z.ZodType<T>, why: string): T {
  const value = readOptionalJson(modelDir, name, schema)
  if (value === undefined) {
    throw new TokenizerFileError(join(modelDir, name), `${join(modelDir, name)} was not found: ${why}. Download the model again, or copy that file from where it came from.`)
  }
  return value
}

/** Reads and checks a JSON file the model folder may have; undefined when it has not. */
export function readOptionalJson<T>(modelDir: string, name: string, schema: z.ZodType<T>): T | undefined {
  const path = join(modelDir, name)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new TokenizerFileError(path, `${path} could not be read (${messageOf(err)}).`, { cause: err })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new TokenizerFileError(path, `${path} is not valid JSON (${messageOf(err)}): the file is damaged or was not fully downloaded.`, { cause: err })
  }
  const parsed = schema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''
    throw new TokenizerFileError(path, `${path} is not a valid ${name} (${where}${issue?.message ?? 'unexpected content'}).`)
  }
  return parsed.data
}
