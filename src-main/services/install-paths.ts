import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

let cachedRoot: string | undefined

/**
 * The folder holding Attune's package.json, found by walking up from this module. That gives the
 * same answer from the TypeScript source (vitest), from the bundle in out/main, from a shared
 * chunk below it, and inside a packaged app.asar.
 */
export function projectRoot(): string {
  if (cachedRoot) return cachedRoot
  const start = dirname(fileURLToPath(import.meta.url))
  for (let dir = start; ; dir = dirname(dir)) {
    if (isAttuneManifest(join(dir, 'package.json'))) return (cachedRoot = dir)
    if (dirname(dir) === dir) throw new Error(`Could not find Attune's package.json in any folder above ${start}; reinstall with npm install.`)
  }
}

function isAttuneManifest(path: string): boolean {
  if (!existsSync(path)) return false
  try {
    return (JSON.parse(readFileSync(path, 'utf8')) as { name?: unknown }).name === 'attune'
  } catch {
    return false
  }
}

/** Where the build puts each artifact. */
export function builtPaths(root: string = projectRoot()) {
  return {
    renderer: join(root, 'out', 'renderer'),
    preload: join(root, 'out', 'preload', 'index.cjs'),
    engineWorker: join(root, 'out', 'main', 'engine-worker.js'),
  }
}

export function appVersion(root: string = projectRoot()): string {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version
}
