import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The folder that holds Attune's package.json, found by walking up from this module. The same
 * answer whether the code runs from source (tests) or bundled into out/main (CLI, app).
 */
export function installRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json')
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'attune') return dir
    if (dirname(dir) === dir) throw new Error(`Attune's install folder was not found above ${from}; reinstall with npm install.`)
  }
}

/** Where the build puts each artifact, relative to the install root. */
export function builtPaths(root: string = installRoot()) {
  return {
    renderer: join(root, 'out', 'renderer'),
    preload: join(root, 'out', 'preload', 'index.cjs'),
    engineWorker: join(root, 'out', 'main', 'engine-worker.js'),
  }
}

export function appVersion(root: string = installRoot()): string {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version
}
