import type { TrainingMethod } from '../src-main/contract/runs'

/** What to show for a failure: ApiErrors carry a message written for the user already. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * Sizes in binary units with the everyday "GB" label, so a 24 GB graphics card reads as
 * 24 GB here too (GPU vendors and operating systems count memory this way).
 */
export function formatBytes(bytes: number): string {
  const gb = bytes / 1024 ** 3
  if (gb >= 1) return `${gb.toFixed(gb >= 100 ? 0 : 1)} GB`
  return `${Math.round(bytes / 1024 ** 2)} MB`
}

export function formatDateTime(iso: string): string {
  const date = new Date(iso)
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
}

export function formatLoss(loss: number | null): string {
  return loss === null ? '—' : loss.toFixed(4)
}

const methodNames: Record<TrainingMethod, string> = { lora: 'LoRA', dora: 'DoRA', qlora: 'QLoRA', qdora: 'QDoRA' }

export function methodName(method: TrainingMethod): string {
  return methodNames[method]
}

const platformNames: Record<string, string> = { linux: 'Linux', win32: 'Windows', darwin: 'macOS' }

export function operatingSystemName(platform: string, arch: string): string {
  return `${platformNames[platform] ?? platform} (${arch})`
}
