import type { Command } from '../command'
import { formatTable } from '../format'
import { callOrThrow } from '../call'
import { numberOption } from '../options'
import { UserError } from '../user-error'

export const runsCommand: Command = {
  name: 'runs',
  summary: 'The experiment log: list training runs',
  usage: 'attune runs list [--limit N] [--home DIR] [--json]',
  options: { limit: { type: 'string' } },
  async run(context) {
    const [action = 'list'] = context.positionals
    if (action !== 'list') throw new UserError(`"attune runs ${action}" is not a command: use "attune runs list".`)
    const limit = context.options.limit === undefined ? undefined : numberOption(context.options, 'limit', { integer: true, min: 1, max: 1000 })
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
