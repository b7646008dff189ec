import { formatChoices, type FormatChoice } from '../domain/dataset/types'
import type { CommandContext } from './command'
import { UserError } from './user-error'

type Options = CommandContext['options']

/** A required string flag, or a plain error naming it. */
export function requireString(options: Options, name: string): string {
  const value = options[name]
  if (typeof value !== 'string' || value.length === 0) throw new UserError(`--${name} is required.`)
  return value
}

/** A numeric flag, checked against its range, with an error that names it and the bad value. */
export function numberOption(
  options: Options,
  name: string,
  rules: { integer?: boolean; min?: number; max?: number; exclusiveMin?: boolean },
): number {
  const raw = options[name]
  const value = Number(raw)
  const belowMin = rules.min !== undefined && (rules.exclusiveMin ? value <= rules.min : value < rules.min)
  const aboveMax = rules.max !== undefined && value > rules.max
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(value) || (rules.integer && !Number.isInteger(value)) || belowMin || aboveMax) {
    const kind = rules.integer ? 'a whole number' : 'a number'
    const range = [
      rules.min !== undefined ? `${rules.exclusiveMin ? 'above' : 'at least'} ${rules.min}` : '',
      rules.max !== undefined ? `at most ${rules.max}` : '',
    ].filter(Boolean)
    throw new UserError(`--${name} must be ${kind}${range.length ? ` (${range.join(', ')})` : ''}, not "${String(raw)}".`)
  }
  return value
}

/** `--format`: auto or one of the dataset formats of cli.md. */
export function formatOption(options: Options): FormatChoice {
  const format = options.format === undefined ? 'auto' : String(options.format)
  if (!(formatChoices as readonly string[]).includes(format)) throw new UserError(`--format must be one of ${formatChoices.join(', ')}, not "${format}".`)
  return format as FormatChoice
}

/** Runs a long engine call that Ctrl+C cancels cleanly (the engine stops between steps). */
export async function whileInterruptible<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  const interrupt = () => controller.abort()
  process.once('SIGINT', interrupt)
  try {
    return await run(controller.signal)
  } finally {
    process.off('SIGINT', interrupt)
  }
}

/**
 * `--device cuda` for a command whose GPU path is not in this version yet: a plain refusal rather
 * than a silent run on the CPU (auto and cpu run there as they always have).
 */
export function refuseGpuNotYetAvailable(context: CommandContext, what: string): void {
  if (context.device === 'cuda') throw new UserError(`${what} on the GPU is not in this version of Attune yet: use --device auto or cpu.`)
}
