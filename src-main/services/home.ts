import { mkdirSync } from 'node:fs'
import { homedir } from 'node:os'
import { isAbsolute, join, resolve } from 'node:path'
import { ApiError } from '../contract/errors'

/** The folders inside the home folder; the database indexes the files kept in them. */
export const homeSubfolders = ['models', 'datasets', 'runs', 'adapters', 'exports'] as const

export interface HomeLayout {
  root: string
  databasePath: string
  models: string
  datasets: string
  runs: string
  adapters: string
  exports: string
}

/**
 * The per-user data folder, the same one Electron's app.getPath('userData') gives for an app
 * named "Attune", so the CLI and the desktop app share one library without Electron loaded.
 */
export function defaultHomeDir(platform: NodeJS.Platform = process.platform, env: NodeJS.ProcessEnv = process.env): string {
  const home = homedir()
  if (platform === 'win32') return join(env.APPDATA ?? join(home, 'AppData', 'Roaming'), 'Attune')
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', 'Attune')
  return join(env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(home, '.config'), 'Attune')
}

/** `--home` wins, then ATTUNE_HOME, then the per-user default. */
export function resolveHomeDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = flag ?? env.ATTUNE_HOME
  return chosen ? resolve(chosen) : defaultHomeDir(process.platform, env)
}

/** Creates the home folder and its subfolders if missing. */
export function prepareHome(root: string): HomeLayout {
  const layout: HomeLayout = {
    root,
    databasePath: join(root, 'attune.db'),
    models: join(root, 'models'),
    datasets: join(root, 'datasets'),
    runs: join(root, 'runs'),
    adapters: join(root, 'adapters'),
    exports: join(root, 'exports'),
  }
  try {
    for (const name of homeSubfolders) mkdirSync(layout[name], { recursive: true })
  } catch (error) {
    // A file where the folder should be, no permission, a read-only disk: the user's to fix.
    throw new ApiError('USER_ERROR', `Attune cannot use ${root} as its data folder (${(error as Error).message}); choose another with --home or ATTUNE_HOME.`)
  }
  return layout
}
