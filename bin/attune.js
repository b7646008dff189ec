#!/usr/bin/env node
// The `attune` command. The CLI is bundled by `npm install` (electron-vite build) into out/main.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const cli = fileURLToPath(new URL('../out/main/cli.js', import.meta.url))
if (!existsSync(cli)) {
  process.stderr.write('Attune is not built yet: run "npm install" (or "npm run build") in its folder first.\n')
  process.exit(2)
}
await import(cli)
