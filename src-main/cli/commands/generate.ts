import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { z } from 'zod'
import { ChatMessage } from '../../engine/protocol'
import type { Command } from '../command'
import { numberOption, refuseGpuNotYetAvailable, requireString, whileInterruptible } from '../options'
import { UserError } from '../user-error'

const MessagesFile = z.union([z.array(ChatMessage).min(1), z.strictObject({ messages: z.array(ChatMessage).min(1) })])

function readMessages(path: string): ChatMessage[] {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new UserError(`Cannot read ${path}: ${(error as Error).message}`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw new UserError(`${path} is not valid JSON (${(error as Error).message}); it must hold an array of {"role", "content"} messages.`)
  }
  const parsed = MessagesFile.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new UserError(`${path}: ${issue?.path.join('.') || 'the file'}: ${issue?.message ?? 'invalid'}. Expected [{"role": "user", "content": "…"}, …] with roles system, user or assistant.`)
  }
  return Array.isArray(parsed.data) ? parsed.data : parsed.data.messages
}

export const generateCommand: Command = {
  name: 'generate',
  summary: 'Continue a prompt or answer a conversation with a model, streaming the text',
  usage:
    'attune generate --model <dir> [--adapter <dir>] (--prompt TEXT | --messages FILE) [--max-new-tokens 128] [--temperature 0] [--top-p 1] [--top-k 0] [--repetition-penalty 1] [--seed S]',
  options: {
    model: { type: 'string' },
    adapter: { type: 'string' },
    prompt: { type: 'string' },
    messages: { type: 'string' },
    'max-new-tokens': { type: 'string', default: '128' },
    temperature: { type: 'string', default: '0' },
    'top-p': { type: 'string', default: '1' },
    'top-k': { type: 'string', default: '0' },
    'repetition-penalty': { type: 'string', default: '1' },
    seed: { type: 'string' },
  },
  async run(context) {
    refuseGpuNotYetAvailable(context, 'Generation')
    const modelDir = resolve(requireString(context.options, 'model'))
    const adapterDir = typeof context.options.adapter === 'string' ? resolve(context.options.adapter) : undefined
    const { prompt, messages } = context.options
    if ((prompt === undefined) === (messages === undefined)) throw new UserError('Give exactly one of --prompt TEXT or --messages FILE.')
    const input =
      typeof prompt === 'string'
        ? { kind: 'prompt' as const, text: prompt }
        : { kind: 'messages' as const, messages: readMessages(resolve(String(messages))) }
    const seed = context.options.seed === undefined ? undefined : numberOption(context.options, 'seed', { integer: true, min: 0 })
    const sampling = {
      maxNewTokens: numberOption(context.options, 'max-new-tokens', { integer: true, min: 0 }),
      temperature: numberOption(context.options, 'temperature', { min: 0 }),
      topP: numberOption(context.options, 'top-p', { min: 0, max: 1, exclusiveMin: true }),
      topK: numberOption(context.options, 'top-k', { integer: true, min: 0 }),
      repetitionPenalty: numberOption(context.options, 'repetition-penalty', { min: 0, exclusiveMin: true }),
      ...(seed === undefined ? {} : { seed }),
    }
    const { engine } = context.services()
    const result = await whileInterruptible((signal) =>
      engine.call('generate', { modelDir, ...(adapterDir ? { adapterDir } : {}), input, sampling }, { signal, onProgress: ({ text }) => (context.json ? undefined : process.stdout.write(text)) }),
    )
    if (context.json) context.out(JSON.stringify(result))
    else {
      process.stdout.write('\n')
      const rate = result.completionTokens > 1 && result.decodeMs > 0 ? ((result.completionTokens - 1) / result.decodeMs) * 1000 : 0
      context.err(`${result.completionTokens} tokens (${result.finishReason}), ${rate.toFixed(1)} tokens/s, prompt ${result.promptTokens} tokens in ${result.prefillMs.toFixed(0)} ms`)
    }
  },
}
