// Atomic writes of files and folders (services/atomic-file.ts): a full disk (ENOSPC, injected)
// or a crash (a child process killed part-way) never leaves a half-written file or folder where
// the good one was; leftovers are recognised and cleaned next time; concurrent writers, in this
// process and in several processes, never corrupt the target.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cleanAtomicLeftovers, parseAtomicLeftover, writeFileAtomic, writeFilesAtomic } from '../../src-main/services/atomic-file'

let dir: string
let moduleUrl: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'attune-atomic-'))
  // The module, compiled to plain JavaScript, for the child processes (it imports only node:*).
  const source = readFileSync(join(process.cwd(), 'src-main', 'services', 'atomic-file.ts'), 'utf8')
  const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText
  const path = join(dir, 'atomic-file.mjs')
  writeFileSync(path, js)
  moduleUrl = new URL(`file://${path}`).href
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

let count = 0
const fresh = (name: string) => {
  const folder = join(dir, `case-${count++}`)
  mkdirSync(folder)
  return join(folder, name)
}

/** Writes half of the data, then fails as a full disk does. */
const fullDisk = async (handle: FileHandle, data: Uint8Array) => {
  await handle.write(data, 0, Math.floor(data.length / 2))
  throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' })
}

const listing = (folder: string) => readdirSync(folder).sort()
const leftovers = (folder: string) => readdirSync(folder).filter((name) => parseAtomicLeftover(name) !== null)

/** Runs a Node script (ES module source) in a child process; resolves with its exit code or signal. */
function runChild(script: string, args: string[] = []): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  const path = join(dir, `child-${count++}.mjs`)
  writeFileSync(path, script.replaceAll('MODULE_URL', JSON.stringify(moduleUrl)))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.on('error', reject)
    child.on('exit', (code, signal) => resolve({ code, signal, stderr }))
  })
}

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  const pid = child.pid!
  await new Promise((resolve) => child.on('exit', resolve))
  return pid
}

describe('writeFileAtomic', () => {
  it('writes, replaces, creates the parent folder, leaves nothing else', async () => {
    const path = fresh('nested/deeper/file.json')
    await writeFileAtomic(path, '{"v":1}')
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]))
    expect([...readFileSync(path)]).toEqual([1, 2, 3])
    expect(listing(join(path, '..'))).toEqual(['file.json'])
  })

  it('a full disk (ENOSPC) keeps the old file intact and removes the temporary one', async () => {
    const path = fresh('state.json')
    await writeFileAtomic(path, 'old contents')
    await expect(writeFileAtomic(path, 'x'.repeat(100_000), { writeData: fullDisk })).rejects.toMatchObject({ code: 'ENOSPC' })
    expect(readFileSync(path, 'utf8')).toBe('old contents')
    expect(listing(join(path, '..'))).toEqual(['state.json'])
  })

  it('a full disk on a first write leaves no file at all', async () => {
    const path = fresh('new.bin')
    await expect(writeFileAtomic(path, new Uint8Array(4096), { writeData: fullDisk })).rejects.toMatchObject({ code: 'ENOSPC' })
    expect(listing(join(path, '..'))).toEqual([])
  })

  it('concurrent writers in one process: the file is always one writer’s whole content', async () => {
    const path = fresh('shared.txt')
    const contents = Array.from({ length: 25 }, (_, i) => `writer ${i} `.repeat(2000 + i))
    await Promise.all(contents.map((content) => writeFileAtomic(path, content)))
    expect(contents).toContain(readFileSync(path, 'utf8'))
    expect(listing(join(path, '..'))).toEqual(['shared.txt'])
  })
})

describe('writeFilesAtomic', () => {
  it('writes a folder with subfolders, and replaces it whole', async () => {
    const folder = fresh('checkpoint')
    await writeFilesAtomic(folder, { 'a.json': '{}', 'sub/b.bin': new Uint8Array([7]), 'sub/deep/c.txt': 'c' })
    expect(listing(folder)).toEqual(['a.json', 'sub'])
    expect(readFileSync(join(folder, 'sub', 'deep', 'c.txt'), 'utf8')).toBe('c')
    await writeFilesAtomic(folder, { 'new.txt': 'n' })
    expect(listing(folder)).toEqual(['new.txt'])
    expect(listing(join(folder, '..'))).toEqual(['checkpoint'])
  })

  it('a full disk on any file keeps the old folder intact, every file of it', async () => {
    const folder = fresh('adapter')
    await writeFilesAtomic(folder, { 'adapter_config.json': 'old config', 'adapter_model.safetensors': 'old weights' })
    let calls = 0
    const failSecond = async (handle: FileHandle, data: Uint8Array) => {
      if (++calls === 2) return fullDisk(handle, data)
      await handle.writeFile(data)
    }
    await expect(writeFilesAtomic(folder, { 'adapter_config.json': 'new config', 'adapter_model.safetensors': 'new weights'.repeat(1000) }, { writeData: failSecond })).rejects.toMatchObject({ code: 'ENOSPC' })
    expect(listing(folder)).toEqual(['adapter_config.json', 'adapter_model.safetensors'])
    expect(readFileSync(join(folder, 'adapter_config.json'), 'utf8')).toBe('old config')
    expect(readFileSync(join(folder, 'adapter_model.safetensors'), 'utf8')).toBe('old weights')
    expect(listing(join(folder, '..'))).toEqual(['adapter'])
  })

  it('refuses paths outside the folder', async () => {
    const folder = fresh('f')
    for (const bad of ['../escape.txt', '/etc/passwd', '', 'a/../../b', '.']) {
      await expect(writeFilesAtomic(folder, { [bad]: 'x' }), bad).rejects.toThrow(/is not a path inside the folder/)
    }
    expect(existsSync(folder)).toBe(false)
  })

  it('concurrent writers in one process: the folder is always one writer’s complete set', async () => {
    const folder = fresh('run')
    await Promise.all(Array.from({ length: 20 }, (_, i) => writeFilesAtomic(folder, { 'a.txt': `writer ${i}`, 'b.txt': `writer ${i}`, [`only-${i}.txt`]: 'x' })))
    const files = listing(folder)
    expect(files).toHaveLength(3)
    const writer = readFileSync(join(folder, 'a.txt'), 'utf8')
    expect(readFileSync(join(folder, 'b.txt'), 'utf8')).toBe(writer)
    expect(files).toContain(`only-${writer.split(' ')[1]}.txt`)
    expect(listing(join(folder, '..'))).toEqual(['run'])
  })
})

describe('several processes', () => {
  it('writers in 4 processes at once: readers only ever see complete versions', async () => {
    const file = fresh('shared.bin')
    const folder = join(file, '..', 'shared-folder')
    await writeFileAtomic(file, 'start')
    const script = `
      import { writeFileAtomic, writeFilesAtomic } from MODULE_URL
      const [file, folder, id] = process.argv.slice(2)
      for (let i = 0; i < 15; i++) {
        const tag = 'writer ' + id + ' version ' + i
        // A version is complete when it is its tag repeated 5000 times.
        await writeFileAtomic(file, (tag + '|').repeat(5000))
        await writeFilesAtomic(folder, { 'a.txt': tag, 'b.txt': tag.repeat(1000), ['only-' + id + '.txt']: tag })
      }
    `
    const children = [0, 1, 2, 3].map((id) => runChild(script, [file, folder, String(id)]))
    let done = false
    void Promise.all(children).then(() => (done = true))
    let reads = 0
    while (!done) {
      const text = readFileSync(file, 'utf8')
      if (text !== 'start') {
        const parts = text.split('|')
        expect(parts).toHaveLength(5001)
        expect(new Set(parts.slice(0, 5000)).size).toBe(1)
      }
      reads++
      await new Promise((resolve) => setImmediate(resolve))
    }
    for (const result of await Promise.all(children)) expect(result, result.stderr).toMatchObject({ code: 0 })
    expect(reads).toBeGreaterThan(0)
    const tag = readFileSync(join(folder, 'a.txt'), 'utf8')
    expect(readFileSync(join(folder, 'b.txt'), 'utf8')).toBe(tag.repeat(1000))
    expect(listing(folder)).toEqual(['a.txt', 'b.txt', `only-${tag.split(' ')[1]}.txt`])
    expect(leftovers(join(file, '..'))).toEqual([])
  })
})

describe('crashes', () => {
  it('a process killed while writing leaves the old file and a recognisable leftover, cleaned by the next write', async () => {
    const path = fresh('model.safetensors')
    await writeFileAtomic(path, 'good old bytes')
    const result = await runChild(
      `
      import { writeFileAtomic } from MODULE_URL
      await writeFileAtomic(process.argv[2], 'n'.repeat(1 << 20), {
        writeData: async (handle, data) => {
          await handle.write(data, 0, data.length >> 1)
          process.kill(process.pid, 'SIGKILL')
          await new Promise(() => {})
        },
      })
    `,
      [path],
    )
    expect(result.signal).toBe('SIGKILL')
    expect(readFileSync(path, 'utf8')).toBe('good old bytes')
    const [leftover] = leftovers(join(path, '..'))
    expect(parseAtomicLeftover(leftover!)).toMatchObject({ target: 'model.safetensors', kind: 'tmp' })
    await writeFileAtomic(path, 'new')
    expect(listing(join(path, '..'))).toEqual(['model.safetensors'])
  })

  it('a process killed while writing a folder leaves the old folder; the leftover goes next time', async () => {
    const folder = fresh('step-100')
    await writeFilesAtomic(folder, { 'state.bin': 'old' })
    const result = await runChild(
      `
      import { writeFilesAtomic } from MODULE_URL
      let n = 0
      await writeFilesAtomic(process.argv[2], { 'a': 'aaaa', 'state.bin': 'new' }, {
        writeData: async (handle, data) => {
          if (++n === 2) process.kill(process.pid, 'SIGKILL')
          await handle.writeFile(data)
        },
      })
    `,
      [folder],
    )
    expect(result.signal).toBe('SIGKILL')
    expect(listing(folder)).toEqual(['state.bin'])
    expect(readFileSync(join(folder, 'state.bin'), 'utf8')).toBe('old')
    expect(leftovers(join(folder, '..'))).toHaveLength(1)
    expect(await cleanAtomicLeftovers(join(folder, '..'))).toMatchObject({ removed: [expect.stringMatching(/^\.step-100\.attune-tmp-\d+-[0-9a-f]{12}$/)], restored: [] })
    expect(listing(join(folder, '..'))).toEqual(['step-100'])
  })

  it('a crash between setting the old folder aside and renaming the new one in: the old one comes back', async () => {
    const folder = fresh('adapter')
    const parent = join(folder, '..')
    await writeFilesAtomic(folder, { 'adapter_config.json': 'old' })
    const pid = await deadPid()
    // The state such a crash leaves: the old folder set aside, the new one complete but not in place.
    renameSync(folder, join(parent, `.adapter.attune-old-${pid}-0123456789ab`))
    mkdirSync(join(parent, `.adapter.attune-tmp-${pid}-ba9876543210`))
    writeFileSync(join(parent, `.adapter.attune-tmp-${pid}-ba9876543210`, 'adapter_config.json'), 'new')
    expect(existsSync(folder)).toBe(false)
    expect(await cleanAtomicLeftovers(parent)).toEqual({ removed: [`.adapter.attune-tmp-${pid}-ba9876543210`], restored: [`.adapter.attune-old-${pid}-0123456789ab`] })
    expect(readFileSync(join(folder, 'adapter_config.json'), 'utf8')).toBe('old')
    expect(listing(parent)).toEqual(['adapter'])
    // The next write to the target restores it by itself too.
    renameSync(folder, join(parent, `.adapter.attune-old-${pid}-0123456789ab`))
    await writeFilesAtomic(folder, { 'adapter_config.json': 'newer' })
    expect(readFileSync(join(folder, 'adapter_config.json'), 'utf8')).toBe('newer')
    expect(listing(parent)).toEqual(['adapter'])
  })

  it('leaves alone the leftovers of a live process, unless they are over an hour old', async () => {
    const path = fresh('busy.json')
    const parent = join(path, '..')
    const live = process.ppid // alive, and not this process
    const name = `.busy.json.attune-tmp-${live}-aaaaaaaaaaaa`
    writeFileSync(join(parent, name), 'partial')
    await writeFileAtomic(path, 'mine')
    expect(listing(parent)).toEqual([name, 'busy.json'].sort())
    const hoursAgo = new Date(Date.now() - 2 * 3600_000)
    utimesSync(join(parent, name), hoursAgo, hoursAgo)
    await writeFileAtomic(path, 'mine again')
    expect(listing(parent)).toEqual(['busy.json'])
  })

  it('recognises only its own names', () => {
    expect(parseAtomicLeftover('.a.b.attune-tmp-123-0123456789ab')).toEqual({ name: '.a.b.attune-tmp-123-0123456789ab', target: 'a.b', kind: 'tmp', pid: 123 })
    expect(parseAtomicLeftover('.x.attune-old-9-ffffffffffff')).toMatchObject({ target: 'x', kind: 'old', pid: 9 })
    for (const name of ['a.attune-tmp-1-0123456789ab', '.a.attune-tmp-1-xyz', '.a.attune-new-1-0123456789ab', 'adapter', '.a.attune-tmp--0123456789ab']) {
      expect(parseAtomicLeftover(name), name).toBeNull()
    }
  })
})
