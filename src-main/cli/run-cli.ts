import { parseArgs } from 'node:util'
import { ApiError } from '../contract/errors'
import { openServices, type AttuneServices } from '../services/bootstrap'
import { appVersion, builtPaths } from '../services/install-paths'
import { resolveHomeDir } from '../services/home'
import { forkSpawner } from '../engine/host'
import type { Command, CommandContext, Device, OptionSpec } from './command'
import { checkDataCommand } from './commands/check-data'
import { evalCommand } from './commands/eval'
import { generateCommand } from './commands/generate'
import { infoCommand } from './commands/info'
import { quantizeCommand } from './commands/quantize'
import { runsCommand } from './commands/runs'
import { serveCommand } from './commands/serve'
import { trainCommand } from './commands/train'
import { UserError } from './user-error'

const commands: Command[] = [infoCommand, checkDataCommand, trainCommand, generateCommand, evalCommand, quantizeCommand, runsCommand, serveCommand]

/** Flags every command accepts (cli.md). */
const commonOptions: OptionSpec = {
  home: { type: 'string' },
  device: { type: 'string', default: 'auto' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
}

function helpText(): string {
  const width = Math.max(...commands.map((command) => command.name.length))
  return [
    `attune ${appVersion()}: fine-tune open LLMs on your own GPU`,
    '',
    'Usage: attune <command> [options]',
    '',
    'Commands:',
    ...commands.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`),
    '',
    'Options for every command:',
    '  --home DIR           where models, datasets, runs, adapters and the log live (or ATTUNE_HOME)',
    '  --device auto|cpu|cuda',
    '  --json               machine-readable result on stdout; progress goes to stderr',
    '  -h, --help           help for a command: attune <command> --help',
  ].join('\n')
}

/** Runs the CLI and returns its exit code: 0 done, 1 user error, 2 internal error. */
export async function runCli(argv: string[]): Promise<number> {
  const out = (text: string) => process.stdout.write(text + '\n')
  const err = (text: string) => process.stderr.write(text + '\n')
  const name = argv[0]
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out(helpText())
    return 0
  }
  if (name === '--version') {
    out(appVersion())
    return 0
  }
  const command = commands.find((candidate) => candidate.name === name)
  if (!command) {
    err(`"${name}" is not an attune command. Run "attune --help" to see the commands.`)
    return 1
  }

  let services: AttuneServices | undefined
  try {
    const { values, positionals } = parseCommandLine(command, argv.slice(1))
    if (values.help) {
      out(`${command.summary}\n\nUsage: ${command.usage}`)
      return 0
    }
    const device = String(values.device)
    if (!['auto', 'cpu', 'cuda'].includes(device)) throw new UserError(`--device must be auto, cpu or cuda, not "${device}".`)
    const homeDir = resolveHomeDir(values.home as string | undefined)
    const context: CommandContext = {
      homeDir,
      device: device as Device,
      json: values.json === true,
      positionals,
      options: values,
      services: () => (services ??= openServices({ homeDir, spawner: forkSpawner(builtPaths().engineWorker), version: appVersion(), log: err })),
      out,
      err,
    }
    await command.run(context)
    return 0
  } catch (error) {
    return reportFailure(error, err)
  } finally {
    await services?.close()
  }
}

function parseCommandLine(command: Command, args: string[]) {
  try {
    return parseArgs({ args, options: { ...commonOptions, ...command.options }, allowPositionals: true, strict: true })
  } catch (error) {
    // parseArgs explains unknown or malformed flags well; add where to look.
    throw new UserError(`${(error as Error).message}. Usage: ${command.usage}`)
  }
}

function reportFailure(error: unknown, err: (text: string) => void): number {
  if (error instanceof UserError) {
    err(error.message)
    return 1
  }
  if (error instanceof ApiError && ['USER_ERROR', 'INVALID_REQUEST', 'NOT_FOUND', 'OUT_OF_MEMORY'].includes(error.code)) {
    err(error.message)
    return 1
  }
  const message = error instanceof Error ? error.message : String(error)
  err(`Attune failed: ${message}`)
  if (process.env.ATTUNE_DEBUG && error instanceof Error && error.stack) err(error.stack)
  else err('Set ATTUNE_DEBUG=1 for details, and please report this as a bug.')
  return 2
}
