import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { startApiServer } from '../../server/api-server'
import { newAccessToken } from '../../server/access-token'
import { builtPaths } from '../../services/install-paths'
import type { Command } from '../command'
import { UserError } from '../user-error'

const loopbackHosts = new Set(['127.0.0.1', 'localhost', '::1'])

export const serveCommand: Command = {
  name: 'serve',
  summary: "Serve the app's screens and API to a browser (loopback only unless --host says otherwise)",
  usage: 'attune serve [--host 127.0.0.1] [--port 7860] [--home DIR] [--json]',
  options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '7860' } },
  async run(context) {
    const host = String(context.options.host)
    const port = Number(context.options.port)
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`--port must be a number from 0 to 65535, not "${String(context.options.port)}".`)
    const { renderer } = builtPaths()
    if (!existsSync(join(renderer, 'index.html'))) throw new UserError(`The app's screens are not built (${renderer} is missing): run "npm install" or "npm run build".`)
    if (!loopbackHosts.has(host)) context.err(`Warning: serving on ${host} makes Attune reachable from other machines; anyone with the link can use it.`)

    const services = context.services()
    const token = newAccessToken()
    let server
    try {
      server = await startApiServer({ router: services.router, events: services.events, rendererDir: renderer, token, host, port, log: context.err })
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'EADDRINUSE') throw new UserError(`Port ${port} is already in use: pick another with --port.`)
      if (code === 'EADDRNOTAVAIL') throw new UserError(`${host} is not an address of this machine: check --host.`)
      throw error
    }
    context.out(context.json ? JSON.stringify({ url: server.url, port: server.port, token }) : `Attune is running at ${server.url}\nOpen that link in a browser (it holds this session's access token). Press Ctrl+C to stop.`)

    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
        resolve()
      }
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
    })
    await server.close()
  },
}
