// `attune check-data` (cli.md): the command's run() with a fake context capturing stdout and
// stderr, on the committed fixtures, temp files, and the golden model folders.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CommandContext } from '../../src-main/cli/command'
import { checkDataCommand } from '../../src-main/cli/commands/check-data'
import { UserError } from '../../src-main/cli/user-error'
import { checkDataset } from '../../src-main/domain/dataset/check'

const fixtures = join(process.cwd(), 'test', 'fixtures', 'datasets')
const golden = join(process.cwd(), 'test', 'golden', 'fixtures')
let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'attune-check-data-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface Outcome {
  code: 0 | 1
  stdout: string
  stderr: string
}

/** Runs the command as run-cli.ts would: UserError → its message on stderr and exit code 1. */
async function checkData(args: string[], options: Record<string, string | boolean> = {}): Promise<Outcome> {
  const stdout: string[] = []
  const stderr: string[] = []
  const context: CommandContext = {
    homeDir: dir,
    device: 'cpu',
    json: options.json === true,
    positionals: args,
    options: { format: 'auto', ...options },
    services: () => {
      throw new Error('check-data must not need the services')
    },
    out: (text) => stdout.push(text),
    err: (text) => stderr.push(text),
  }
  try {
    await checkDataCommand.run(context)
    return { code: 0, stdout: stdout.join('\n'), stderr: stderr.join('\n') }
  } catch (error) {
    if (!(error instanceof UserError)) throw error
    stderr.push(error.message)
    return { code: 1, stdout: stdout.join('\n'), stderr: stderr.join('\n') }
  }
}

function write(name: string, content: string): string {
  const path = join(dir, name)
  writeFileSync(path, content)
  return path
}

const requireGolden = (name: string) => {
  const path = join(golden, name)
  if (!existsSync(join(path, 'tokenizer.json'))) throw new Error(`${path} is missing: generate the golden fixtures with test/golden/make_golden.py`)
  return path
}

describe('attune check-data', () => {
  it('declares its flags', () => {
    expect(checkDataCommand.name).toBe('check-data')
    expect(Object.keys(checkDataCommand.options)).toEqual(['model', 'format', 'seq-len'])
  })

  it('passes a good file: exit 0, the format, the records and a verdict', async () => {
    const { code, stdout } = await checkData([join(fixtures, 'alpaca.jsonl')])
    expect(code).toBe(0)
    expect(stdout).toMatch(/Format\s+alpaca \(detected: the first 3 records have "instruction" and "output"\)/)
    expect(stdout).toMatch(/Records\s+3 usable/)
    expect(stdout).toMatch(/Tokens\s+not counted: add --model/)
    expect(stdout.split('\n').at(-1)).toBe('Usable: 3 records ready to train on. Add --model <dir> to count tokens and check lengths against --seq-len.')
  })

  it('prints exactly the keys of cli.md with --json, tokens and truncated null without --model', async () => {
    const { code, stdout } = await checkData([join(fixtures, 'text.jsonl')], { json: true })
    expect(code).toBe(0)
    expect(JSON.parse(stdout)).toEqual({ ok: true, format: 'text', records: 3, tokens: null, truncated: null, problems: [] })
  })

  it('fails a broken file: exit 1, problems with their lines, and what to do', async () => {
    const { code, stdout, stderr } = await checkData([join(fixtures, 'broken.jsonl')])
    expect(code).toBe(1)
    expect(stdout).toMatch(/Records\s+1 usable, 6 problems/)
    expect(stdout).toContain('\nProblems:\n  line 2: the line is blank')
    expect(stdout).toContain('  line 5: "messages[2].role" is "bot"; use system, user or assistant')
    expect(stderr.split('\n').at(-1)).toBe('Not usable: 6 problems to fix. Correct or remove those records (the numbers above say where) and run attune check-data again.')
  })

  it('lists the problems in --json with their line numbers, and exits 1', async () => {
    const { code, stdout } = await checkData([join(fixtures, 'broken.jsonl')], { json: true })
    expect(code).toBe(1)
    const result = JSON.parse(stdout)
    expect(Object.keys(result)).toEqual(['ok', 'format', 'records', 'tokens', 'truncated', 'problems'])
    expect(result).toMatchObject({ ok: false, format: 'messages', records: 1 })
    expect(result.problems.map((p: { line: number }) => p.line)).toEqual([2, 3, 4, 5, 6, 7])
    expect(result.problems[3]).toEqual({ line: 5, message: 'line 5: "messages[2].role" is "bot"; use system, user or assistant' })
  })

  it('shows the first 10 problems and says how many there are', async () => {
    const path = write('many.jsonl', Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? '{"text": "ok"}' : '{"text": ""}')).join('\n'))
    const { code, stdout } = await checkData([path])
    expect(code).toBe(1)
    expect(stdout).toContain('Problems (the first 10 of 15):')
    expect(stdout.match(/^ {2}line \d+: "text" is empty$/gm)).toHaveLength(10)
  })

  it('explains a document, and exits 1', async () => {
    const { code, stdout, stderr } = await checkData([join(fixtures, 'paper.pdf')])
    expect(code).toBe(1)
    expect(stdout).toContain('paper.pdf is a PDF document, not a dataset of examples.')
    expect(stderr).toContain('Not usable: this is a document, not a dataset of examples.')
    const json = JSON.parse((await checkData([join(fixtures, 'notes.txt')], { json: true })).stdout)
    expect(json).toMatchObject({ ok: false, format: null, records: 0, tokens: null, truncated: null })
    expect(json.problems).toEqual([{ line: null, message: expect.stringContaining('notes.txt is a plain text document, not a dataset of examples') }])
  })

  it('reports CSV as csv, with the columns it mapped and rows in problems', async () => {
    const ok = await checkData([join(fixtures, 'alpaca.csv')])
    expect(ok.code).toBe(0)
    expect(ok.stdout).toMatch(/Format\s+csv \(instruction → instruction, input → input, output → output; read as alpaca\)/)
    const path = write('bad.csv', 'prompt,completion\nQ,A\nQ,\n')
    const bad = JSON.parse((await checkData([path], { json: true })).stdout)
    expect(bad).toMatchObject({ ok: false, format: 'csv', records: 1, problems: [{ line: 3, message: 'row 3: column "completion" (completion) is empty' }] })
  })

  it('says no record can be used yet when none can', async () => {
    const { code, stdout, stderr } = await checkData([write('cols.csv', 'foo,bar\n1,2\n')])
    expect(code).toBe(1)
    expect(stdout).toContain("row 1: the header row can't be used: no column says what it holds")
    expect(stderr.split('\n').at(-1)).toBe('Not usable: no record can be used yet. Fix the problem above and run attune check-data again.')
  })

  it('honours --format', async () => {
    const path = write('both.jsonl', '{"instruction": "i", "output": "o", "text": "t"}\n')
    expect(JSON.parse((await checkData([path], { json: true })).stdout).format).toBe('alpaca')
    expect(JSON.parse((await checkData([path], { json: true, format: 'text' })).stdout).format).toBe('text')
  })

  it('refuses bad input in one plain sentence', async () => {
    expect(await checkData([])).toMatchObject({ code: 1, stderr: expect.stringContaining('Which file?') })
    expect(await checkData([join(dir, 'nope.jsonl')])).toMatchObject({ code: 1, stderr: expect.stringContaining('nope.jsonl was not found') })
    expect(await checkData([dir])).toMatchObject({ code: 1, stderr: expect.stringContaining('is a folder, not a dataset file') })
    expect(await checkData([join(fixtures, 'text.jsonl')], { format: 'yaml' })).toMatchObject({ code: 1, stderr: expect.stringContaining('--format must be one of auto, text, messages') })
    expect(await checkData([join(fixtures, 'text.jsonl')], { model: dir, 'seq-len': '0' })).toMatchObject({ code: 1, stderr: expect.stringContaining('--seq-len must be a whole number') })
    expect(await checkData([join(fixtures, 'text.jsonl')], { model: join(dir, 'no-model') })).toMatchObject({ code: 1, stderr: expect.stringContaining('is not a folder') })
    expect(await checkData([join(fixtures, 'text.jsonl')], { model: dir })).toMatchObject({ code: 1, stderr: expect.stringContaining('tokenizer.json was not found') })
  })

  it('notes that --seq-len needs --model', async () => {
    const { code, stderr } = await checkData([join(fixtures, 'text.jsonl')], { 'seq-len': '16' })
    expect(code).toBe(0)
    expect(stderr).toContain('--seq-len is measured in tokens, which needs --model')
  })
})

describe('attune check-data --model', () => {
  it('counts tokens and truncation', async () => {
    const model = requireGolden('llama')
    const { code, stdout } = await checkData([join(fixtures, 'messages.jsonl')], { json: true, model, 'seq-len': '40' })
    expect(code).toBe(0)
    const result = JSON.parse(stdout)
    expect(result.tokens.min).toBeGreaterThan(20)
    expect(result.tokens.min).toBeLessThanOrEqual(result.tokens.median)
    expect(result.tokens.median).toBeLessThanOrEqual(result.tokens.max)
    expect(result.truncated).toBe([result.tokens.min, result.tokens.max].filter((n) => n > 40).length)

    const human = await checkData([join(fixtures, 'prompt-completion.jsonl')], { model, 'seq-len': '8' })
    expect(human.code).toBe(0)
    expect(human.stdout).toMatch(/Tokens\s+min \d+, median \d+(\.5)?, max \d+ \(llama\)/)
    expect(human.stdout).toMatch(/Truncated\s+2 records longer than 8 tokens will be cut/)
    expect(human.stdout.split('\n').at(-1)).toBe('Usable: 2 records ready to train on. 2 will be cut to 8 tokens: raise --seq-len to keep them whole, or shorten them.')
  })

  it('uses 2048 tokens without --seq-len', async () => {
    const report = await checkData([join(fixtures, 'text.jsonl')], { model: requireGolden('qwen2') })
    expect(report.stdout).toMatch(/Truncated\s+none: every record fits in 2,048 tokens/)
  })

  it('matches the counts of the domain check', async () => {
    const model = requireGolden('qwen3')
    const { loadTokenizer } = await import('../../src-main/domain/tokenizer/load')
    const { findChatTemplate } = await import('../../src-main/domain/chat/template')
    const report = await checkDataset(join(fixtures, 'sharegpt.jsonl'), { encode: { tokenizer: loadTokenizer(model), template: findChatTemplate(model), seqLen: 2048 } })
    const json = JSON.parse((await checkData([join(fixtures, 'sharegpt.jsonl')], { json: true, model })).stdout)
    expect(json.tokens).toEqual(report.tokens)
    expect(report.tokens!.min).toBe(report.tokens!.max)
  })

  it("reports a conversation the model's template refuses on its line", async () => {
    const model = requireGolden('mistral')
    const path = write('alternate.jsonl', ['{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}', '{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}'].join('\n'))
    const result = JSON.parse((await checkData([path], { json: true, model })).stdout)
    expect(result).toMatchObject({ ok: false, records: 1, problems: [{ line: 2, message: expect.stringMatching(/^line 2: the chat template of mistral could not render these messages: .*alternate/) }] })
  })

  it('says once that a model without a chat template cannot take conversations', async () => {
    const source = requireGolden('llama')
    const model = join(dir, 'base-model')
    rmSync(model, { recursive: true, force: true })
    const { mkdirSync } = await import('node:fs')
    mkdirSync(model)
    copyFileSync(join(source, 'tokenizer.json'), join(model, 'tokenizer.json'))
    const config = JSON.parse(readFileSync(join(source, 'tokenizer_config.json'), 'utf8'))
    delete config.chat_template
    writeFileSync(join(model, 'tokenizer_config.json'), JSON.stringify(config))
    const chat = JSON.parse((await checkData([join(fixtures, 'messages.jsonl')], { json: true, model })).stdout)
    expect(chat).toMatchObject({ ok: false, records: 2, tokens: null, truncated: null })
    expect(chat.problems).toEqual([{ line: null, message: expect.stringMatching(/^The model has no chat template, so it can't take conversations/) }])
    const text = JSON.parse((await checkData([join(fixtures, 'text.jsonl')], { json: true, model })).stdout)
    expect(text).toMatchObject({ ok: true, records: 3, truncated: 0 })
  })
})
