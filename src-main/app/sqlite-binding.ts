import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { projectRoot } from '../services/install-paths'

/**
 * better-sqlite3 is a Node-ABI addon: the build `npm install` makes for Node (used by the CLI and
 * the tests) does not load in Electron. `npm start` keeps a second build for Electron's ABI in
 * .electron-native/ (scripts/start.mjs makes it when missing); a packaged app ships it in its
 * resources. Returns undefined when neither exists, so the open fails with the path to fix.
 */
export function electronSqliteBinding(): string | undefined {
  const candidates = [
    join(projectRoot(), '.electron-native', 'better_sqlite3.node'),
    ...(process.resourcesPath ? [join(process.resourcesPath, 'better_sqlite3.node')] : []),
  ]
  return candidates.find((candidate) => existsSync(candidate)) ?? candidates[0]
}
