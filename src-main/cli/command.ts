import type { ParseArgsConfig } from 'node:util'
import type { AttuneServices } from '../services/bootstrap'

export type OptionSpec = NonNullable<ParseArgsConfig['options']>

export type Device = 'auto' | 'cpu' | 'cuda'

/** What every command receives: the common flags of cli.md, its own flags, and the services. */
export interface CommandContext {
  homeDir: string
  device: Device
  json: boolean
  positionals: string[]
  options: Record<string, string | boolean | Array<string | boolean> | undefined>
  /** Opens the home folder, the experiment log and the engine host; closed by the CLI after run(). */
  services(): AttuneServices
  out(text: string): void
  /** Progress and logs: always stderr, so stdout stays machine-readable. */
  err(text: string): void
}

export interface Command {
  name: string
  summary: string
  usage: string
  options: OptionSpec
  /** Resolves when done; a long-running command (serve) resolves when it is stopped. */
  run(context: CommandContext): Promise<void>
}
