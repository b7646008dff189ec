// Builds the engine worker from its TypeScript source once per test run, so the engine tests
// start a real child process running the code under test (not a stale out/main build), and hands
// its path to the tests as inject('engineWorkerPath'). Registered as `globalSetup` of the unit
// project in vitest.config.ts. The build mirrors electron-vite's for out/main: an ESM bundle for
// Node with dependencies (zod) left to node_modules.
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'vite'
import type { TestProject } from 'vitest/node'

declare module 'vitest' {
  export interface ProvidedContext {
    engineWorkerPath: string
  }
}

const root = fileURLToPath(new URL('../..', import.meta.url))

export default async function setup(project: TestProject): Promise<void> {
  const outDir = join(root, 'out', 'test-engine')
  await build({
    configFile: false,
    root,
    logLevel: 'warn',
    build: {
      ssr: join(root, 'src-main', 'engine', 'worker.ts'),
      outDir,
      emptyOutDir: true,
      minify: false,
      rolldownOptions: { output: { entryFileNames: 'engine-worker.js' } },
    },
  })
  project.provide('engineWorkerPath', join(outDir, 'engine-worker.js'))
}
