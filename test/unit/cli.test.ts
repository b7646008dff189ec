import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// The built `attune` command, run as a user runs it, on a fresh home folder.

const cliEntry = join(process.cwd(), 'out', 'main', 'cli.js')
let home: string

beforeAll(() => {
  if (!existsSync(cliEntry)) throw new Error(`${cliEntry} is missing: run "npm run build" before these tests (npm test does).`)
  home = mkdtempSync(join(tmpdir(), 'attune-cli-'))
})
afterAll(() => rmSync(home, { recursive: true, force: true }))

function attune(...args: string[]) {
  const result = spawnSync(process.execPath, ['bin/attune.js', ...args], { encoding: 'utf8', env: { ...process.env, ATTUNE_HOME: home } })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe('attune CLI', () => {
  it('prints help listing the commands', () => {
    const { code, stdout } = attune('--help')
    expect(code).toBe(0)
    for (const command of ['info', 'runs', 'serve']) expect(stdout).toMatch(new RegExp(`^  ${command} `, 'm'))
  })

  it('explains an unknown command and exits 1', () => {
    const { code, stderr } = attune('fly')
    expect(code).toBe(1)
    expect(stderr).toContain('"fly" is not an attune command')
  })

  it('explains an unknown flag with the usage and exits 1', () => {
    const { code, stderr } = attune('runs', 'list', '--colour')
    expect(code).toBe(1)
    expect(stderr).toContain('--colour')
    expect(stderr).toContain('Usage: attune runs list')
    expect(stderr).not.toMatch(/\n\s+at /) // no stack trace
  })

  it('refuses a bad --device and a bad --limit in plain words', () => {
    expect(attune('info', '--device', 'tpu')).toMatchObject({ code: 1, stderr: expect.stringContaining('--device must be auto, cpu or cuda') })
    expect(attune('runs', 'list', '--limit', '0')).toMatchObject({ code: 1, stderr: expect.stringContaining('--limit must be a whole number') })
  })

  it('refuses --device cuda where the GPU path is not in this version yet, instead of quietly using the CPU', () => {
    for (const [command, what] of [['generate', 'Generation'], ['eval', 'Evaluation']]) {
      expect(attune(command!, '--device', 'cuda', '--model', 'nowhere')).toMatchObject({
        code: 1,
        stderr: expect.stringContaining(`${what} on the GPU is not in this version of Attune yet: use --device auto or cpu.`),
      })
    }
  })

  it('lists no runs on a fresh home, as JSON and as text', () => {
    expect(JSON.parse(attune('runs', 'list', '--json').stdout)).toEqual([])
    expect(attune('runs', 'list').stdout).toContain('No training runs yet')
    expect(existsSync(join(home, 'attune.db'))).toBe(true)
  })

  it('--home wins over ATTUNE_HOME', () => {
    const other = mkdtempSync(join(tmpdir(), 'attune-cli-other-'))
    const { stdout } = attune('info', '--json', '--home', other)
    expect(JSON.parse(stdout).app.homeDir).toBe(other)
    rmSync(other, { recursive: true, force: true })
  })

  it('reports this machine from the native engine', () => {
    const { code, stdout } = attune('info', '--json')
    expect(code).toBe(0)
    const { app, system } = JSON.parse(stdout)
    expect(app.homeDir).toBe(home)
    expect(system.cpu.threads).toBe(availableParallelism())
    expect(system.cuda.usable || system.cuda.reason.length > 0).toBe(true)
    expect(attune('info').stdout).toMatch(/^GPU\s+/m)
  })

  const llama = join(process.cwd(), 'test', 'golden', 'fixtures', 'llama')

  it('generate streams text and reports the run as JSON', () => {
    const { code, stdout } = attune('generate', '--model', llama, '--prompt', 'Once upon a time there was', '--max-new-tokens', '5', '--json')
    expect(code).toBe(0)
    const result = JSON.parse(stdout)
    expect(result).toMatchObject({ completionTokens: 5, finishReason: 'length' })
    expect(result.promptTokens).toBeGreaterThan(3)
  })

  it('generate explains bad input in one sentence and exits 1', () => {
    expect(attune('generate', '--model', llama)).toMatchObject({ code: 1, stderr: expect.stringContaining('--prompt TEXT or --messages FILE') })
    expect(attune('generate', '--model', llama, '--prompt', 'x', '--top-p', '0')).toMatchObject({ code: 1, stderr: expect.stringContaining('--top-p must be a number') })
    const notAModel = attune('generate', '--model', home, '--prompt', 'x')
    expect(notAModel.code).toBe(1)
    expect(notAModel.stderr).toMatch(/tokenizer\.json|config\.json/)
    expect(notAModel.stderr).not.toMatch(/\n\s+at /)
  })

  it('eval prints loss, tokens and perplexity', () => {
    const { code, stdout } = attune('eval', '--model', llama, '--data', join(process.cwd(), 'test', 'fixtures', 'datasets', 'text.jsonl'), '--json')
    expect(code).toBe(0)
    const result = JSON.parse(stdout)
    expect(Object.keys(result).sort()).toEqual(['loss', 'perplexity', 'tokens'])
    expect(result.tokens).toBeGreaterThan(0)
    expect(result.perplexity).toBeCloseTo(Math.exp(result.loss), 6)
  })

  it('check-data says a broken file is unusable, with its lines, and exits 1', () => {
    const { code, stdout } = attune('check-data', join(process.cwd(), 'test', 'fixtures', 'datasets', 'broken.jsonl'), '--json')
    expect(code).toBe(1)
    const report = JSON.parse(stdout)
    expect(report.ok).toBe(false)
    expect(report.problems.length).toBeGreaterThan(0)
    expect(typeof report.problems[0].line).toBe('number')
  })
})

