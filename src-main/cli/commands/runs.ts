import type { Command } from '../command'
import { formatTable } from '../format'
import { callOrThrow } from '../call'
import { UserError } from '../user-error'

export const runsCommand: Command = {
  name: 'runs',
  summary: 'The experiment log: list training runs',
  usage: 'attune runs list [--limit N] [--home DIR] [--json]',
  options: { limit: { type: 'string' } },
  async run(context) {
    const [action = 'list'] = context.positionals
    if (action !== 'list') throw new UserError(`"attune runs ${action}" is not a command: use "attune runs list".`)
    const limit = parseLimit(context.options.limit)
    const runs = await callOrThrow(context.services().router, 'runsList', limit === undefined ? {} : { limit })
    if (context.json) {
      context.out(JSON.stringify(runs, null, 2))
      return
    }
    if (runs.length === 0) {
      context.out('No training runs yet. Start one in the app (Train) or with "attune train".')
      return
    }
    context.out(
      formatTable(
        ['ID', 'NAME', 'METHOD', 'STATUS', 'STEPS', 'LOSS', 'CREATED'],
        runs.map((run) => [run.id, run.name, run.method, run.status, String(run.steps), run.lastLoss?.toFixed(4) ?? '-', run.createdAt]),
      ),
    )
  },
}

function parseLimit(value: unknown): number | undefined {
  if (value === undefined) return undefined
  const limit = Number(value)
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UserError(`--limit must be a whole number from 1 to 1000, not "${String(value)}".`)
  return limit
}
