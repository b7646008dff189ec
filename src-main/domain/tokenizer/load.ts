import { join } from 'node:path'
import { findChatTemplate } from '../chat/template'
import { idsConfigSchema, readOptionalJson, readRequiredJson, tokenizerConfigSchema, tokenizerJsonSchema } from './model-files'
import { createModelTokenizer, type ModelTokenizer } from './model-tokenizer'

/**
 * The tokenizer of a Hugging Face model folder: tokenizer.json (required), tokenizer_config.json
 * for the special tokens' names, generation_config.json and config.json for the EOS ids, and
 * the chat template for its end-of-turn token. Throws TokenizerFileError naming the file at fault.
 */
export function loadTokenizer(modelDir: string): ModelTokenizer {
  return createModelTokenizer({
    tokenizerPath: join(modelDir, 'tokenizer.json'),
    tokenizerJson: readRequiredJson(modelDir, 'tokenizer.json', tokenizerJsonSchema, "Attune tokenizes with the model's own tokenizer file"),
    tokenizerConfig: readOptionalJson(modelDir, 'tokenizer_config.json', tokenizerConfigSchema),
    generationConfig: readOptionalJson(modelDir, 'generation_config.json', idsConfigSchema),
    config: readOptionalJson(modelDir, 'config.json', idsConfigSchema),
    chatTemplate: findChatTemplate(modelDir),
  })
}
