#!/usr/bin/env node
// `npm start`: opens the desktop app. Makes sure of the three things a first start may lack:
// the build (out/), better-sqlite3 compiled for Electron's ABI (kept apart from the Node build
// the CLI and tests use, in .electron-native/), and the Electron binary (its package downloads
// it on first use).
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const require = createRequire(import.meta.url)
const electronVersion = require('electron/package.json').version
const nativeDir = join(root, '.electron-native')
const sqliteBinding = join(nativeDir, 'better_sqlite3.node')
const stamp = join(nativeDir, 'electron-version.txt')

function fail(message) {
  process.stderr.write(`\n${message}\n`)
  process.exit(1)
}

function run(command, args, options = {}) {
  return spawnSync(command, args, { stdio: 'inherit', ...options }).status === 0
}

if (!existsSync(join(root, 'out', 'main', 'index.js')) && !run('npx', ['electron-vite', 'build'], { cwd: root })) {
  fail('Building Attune failed (see above). Run "npm install" again, then "npm start".')
}

const stampMatches = existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === electronVersion
if (!existsSync(sqliteBinding) || !stampMatches) {
  process.stderr.write(`Preparing the database library for Electron ${electronVersion} (once)...\n`)
  const work = mkdtempSync(join(tmpdir(), 'attune-sqlite-'))
  const pkg = join(work, 'better-sqlite3')
  cpSync(dirname(require.resolve('better-sqlite3/package.json')), pkg, { recursive: true, filter: (path) => !path.includes(`${join('better-sqlite3', 'build')}`) })
  // npm_config_nodedir points node-gyp at Node's headers; Electron needs its own.
  const env = { ...process.env }
  delete env.npm_config_nodedir
  const target = [`--runtime=electron`, `--target=${electronVersion}`, `--arch=${process.arch}`]
  const prebuilt = run(process.execPath, [require.resolve('prebuild-install/bin.js'), ...target], { cwd: pkg, env })
  const nodeGyp = env.npm_config_node_gyp
  const built = prebuilt || (nodeGyp && run(process.execPath, [nodeGyp, 'rebuild', '--release', ...target, '--dist-url=https://electronjs.org/headers'], { cwd: pkg, env }))
  const output = join(pkg, 'build', 'Release', 'better_sqlite3.node')
  if (!built || !existsSync(output)) {
    rmSync(work, { recursive: true, force: true })
    fail(
      `Could not get better-sqlite3 for Electron ${electronVersion} (this needs an internet connection once).\n` +
        `Check your connection and run "npm start" again. (It is kept in ${nativeDir}.)`,
    )
  }
  mkdirSync(nativeDir, { recursive: true })
  cpSync(output, `${sqliteBinding}.tmp`)
  renameSync(`${sqliteBinding}.tmp`, sqliteBinding)
  writeFileSync(stamp, electronVersion + '\n')
  rmSync(work, { recursive: true, force: true })
}

// electron/cli.js downloads the Electron binary on first use, then starts the app.
const started = spawnSync(process.execPath, [require.resolve('electron/cli.js'), root, ...process.argv.slice(2)], { stdio: 'inherit' })
process.exitCode = started.status ?? 1
