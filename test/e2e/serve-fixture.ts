import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { test as base } from '@playwright/test'

export interface ServedAttune {
  /** The URL `attune serve` printed, token included. */
  url: string
  origin: string
  token: string
  homeDir: string
  /** What the server wrote on stderr so far (refusals are logged there). */
  stderr(): string
}

/** Starts the real `attune serve` (built CLI, real database, real engine worker) on a free port. */
async function startServe(): Promise<{ served: ServedAttune; stop: () => Promise<void> }> {
  const homeDir = mkdtempSync(join(tmpdir(), 'attune-e2e-'))
  const child: ChildProcess = spawn(process.execPath, ['bin/attune.js', 'serve', '--home', homeDir, '--port', '0', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const firstLine = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! })
    lines.once('line', resolve)
    child.once('exit', (code) => reject(new Error(`attune serve exited with ${code}: ${stderr}`)))
  })
  const { url, token } = JSON.parse(firstLine) as { url: string; token: string }
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
    rmSync(homeDir, { recursive: true, force: true })
  }
  return { served: { url, origin: new URL(url).origin, token, homeDir, stderr: () => stderr }, stop }
}

export const test = base.extend<object, { attune: ServedAttune }>({
  attune: [
    // Playwright reads the fixtures a function wants from its destructured first parameter.
    // eslint-disable-next-line no-empty-pattern
    async ({}, use) => {
      const { served, stop } = await startServe()
      await use(served)
      await stop()
    },
    { scope: 'worker' },
  ],
})

export { expect } from '@playwright/test'
