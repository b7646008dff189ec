import { availableParallelism, cpus } from 'node:os'
import { expect, test } from './serve-fixture'

// The real app in Chromium: every screen reachable from the navigation, and the System panel
// showing this machine as the native engine reports it. Screenshots are kept as artifacts.

const screens = ['models', 'data', 'train', 'chat', 'library', 'export', 'settings'] as const

test('every screen is reachable from the navigation', async ({ attune, page }) => {
  await page.goto(attune.url)
  for (const screen of screens) {
    await page.getByTestId(`nav-${screen}`).click()
    await expect(page.getByTestId(`screen-${screen}`)).toBeVisible()
    await expect(page.getByTestId(`nav-${screen}`)).toHaveAttribute('aria-current', 'page')
    await page.screenshot({ path: test.info().outputPath(`screen-${screen}.png`), fullPage: true })
  }
})

test('the System panel shows this machine, and its GPU or why none is usable', async ({ attune, page }) => {
  const reply = await fetch(`${attune.origin}/api/call/systemInfo`, { method: 'POST', headers: { Authorization: `Bearer ${attune.token}` }, body: '{}' })
  const system = ((await reply.json()) as { value: { cuda: { usable: boolean; reason?: string; devices: Array<{ name: string }> } } }).value
  await page.goto(attune.url)
  await page.getByTestId('nav-settings').click()
  await expect(page.getByTestId('system-cpu-threads')).toContainText(String(availableParallelism()))
  const model = cpus()[0]?.model.trim()
  if (model) await expect(page.getByTestId('system-cpu-model')).toContainText(model)
  if (system.cuda.usable) {
    await expect(page.getByTestId('system-gpu-status')).toContainText(system.cuda.devices[0]!.name)
  } else {
    await expect(page.getByTestId('system-gpu-status')).toContainText(/no gpu/i)
    await expect(page.getByTestId('system-gpu-reason')).toContainText(system.cuda.reason!)
  }
  await expect(page.getByTestId('app-home-dir')).toContainText(attune.homeDir)
  await page.screenshot({ path: test.info().outputPath('system-panel.png'), fullPage: true })
})

test('the Library shows an honest empty state from the real database', async ({ attune, page }) => {
  await page.goto(attune.url)
  await page.getByTestId('nav-library').click()
  await expect(page.getByTestId('screen-library')).toContainText(/no training runs yet/i)
})

test('a page opened without the token explains how to get in', async ({ attune, page }) => {
  await page.goto(attune.origin)
  await expect(page.locator('body')).toContainText(/attune serve/i)
})
