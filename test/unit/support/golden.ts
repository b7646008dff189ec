// The golden fixtures (test/golden/fixtures/<name>/, written by test/golden/make_golden.py with
// transformers): where they are, which exist, and each one's reference.json. Tests that compare
// against them fail, never skip, when they are missing.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'

export const goldenDir = join(import.meta.dirname, '..', '..', 'golden', 'fixtures')

export const regenerateHint = 'regenerate them with `bash scripts/python-env.sh && .venv/bin/python test/golden/make_golden.py`'

/** The fixture folders that hold a reference.json, sorted. */
export const goldenFixtures: string[] = existsSync(goldenDir)
  ? readdirSync(goldenDir)
      .filter((name) => existsSync(join(goldenDir, name, 'reference.json')))
      .sort()
  : []

/** A test that fails when the fixtures are missing (so a describe.each over none cannot pass). */
export function itFindsTheGoldenFixtures(): void {
  it('finds the golden fixtures', () => {
    expect(goldenFixtures, `no fixtures in ${goldenDir}: ${regenerateHint}`).not.toHaveLength(0)
  })
}

/** A fixture's reference.json, typed by the caller to the parts it reads. */
export function goldenReference<T>(name: string): T {
  return JSON.parse(readFileSync(join(goldenDir, name, 'reference.json'), 'utf8')) as T
}
