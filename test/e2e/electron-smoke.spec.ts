import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { _electron as electron, expect, test } from '@playwright/test'

// The desktop app itself. Electron's binary is downloaded on first use, which this offline
// machine cannot do; where it is missing the test reports itself skipped with that reason.

/** The binary electron's package would run, without letting it try a download here. */
function electronBinary(): { path?: string; missing?: string } {
  const packageDir = dirname(createRequire(import.meta.url).resolve('electron/package.json'))
  const pathFile = join(packageDir, 'path.txt')
  const path = existsSync(pathFile) ? join(packageDir, 'dist', readFileSync(pathFile, 'utf8').trim()) : undefined
  return path && existsSync(path) ? { path } : { missing: `the Electron binary is not downloaded (${join(packageDir, 'dist')} is missing; npm start fetches it)` }
}

const binary = electronBinary()
const sqliteForElectron = join(process.cwd(), '.electron-native', 'better_sqlite3.node')

test('the desktop window opens securely and reaches the services', async () => {
  test.skip(!binary.path, binary.missing)
  test.skip(!existsSync(sqliteForElectron), `better-sqlite3 has no build for Electron's ABI yet (${sqliteForElectron}); npm start makes it`)
  const home = mkdtempSync(join(tmpdir(), 'attune-electron-'))
  const app = await electron.launch({ executablePath: binary.path, args: ['.', '--no-sandbox'], env: { ...process.env, ATTUNE_HOME: home } })
  try {
    const window = await app.firstWindow()
    await expect(window.getByTestId('nav-settings')).toBeVisible()
    // No Node in the page; the bridge is the only door.
    expect(await window.evaluate(() => typeof (globalThis as { require?: unknown }).require)).toBe('undefined')
    expect(await window.evaluate(() => typeof (globalThis as { attuneBridge?: unknown }).attuneBridge)).toBe('object')
    await window.getByTestId('nav-settings').click()
    await expect(window.getByTestId('app-home-dir')).toContainText(home)
    await window.screenshot({ path: test.info().outputPath('electron-settings.png') })
  } finally {
    await app.close()
    rmSync(home, { recursive: true, force: true })
  }
})
