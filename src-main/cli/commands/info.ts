import type { Command } from '../command'
import { formatBytes, formatFields } from '../format'
import { callOrThrow } from '../call'

export const infoCommand: Command = {
  name: 'info',
  summary: 'Show this machine: CPU, memory, GPUs (or why none is usable) and the data folder',
  usage: 'attune info [--home DIR] [--json]',
  options: {},
  async run(context) {
    const { router } = context.services()
    const app = await callOrThrow(router, 'appInfo', {})
    const system = await callOrThrow(router, 'systemInfo', {})
    if (context.json) {
      context.out(JSON.stringify({ app, system }, null, 2))
      return
    }
    const gpu = system.cuda.usable
      ? system.cuda.devices
          .map((device) => `${device.name}, ${formatBytes(device.memoryBytes)}, compute ${device.computeCapability}`)
          .join('; ')
      : `none usable: ${system.cuda.reason ?? 'unknown reason'}`
    context.out(
      formatFields([
        ['Attune', app.version],
        ['Data folder', app.homeDir],
        ['CPU', `${system.cpu.model} (${system.cpu.threads} threads)`],
        ['Memory', `${formatBytes(system.memory.totalBytes)} (${formatBytes(system.memory.availableBytes)} available)`],
        ['System', `${system.os.platform} ${system.os.arch}`],
        ['GPU', gpu],
        ['Engine', `${system.engine.version} (${system.engine.backends.join(', ')})`],
      ]),
    )
  },
}
