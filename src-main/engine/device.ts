import { ApiError } from '../contract/errors'
import type { CudaInfo } from '../contract/system'

/** What the user asked for (cli.md's --device). */
export type DeviceRequest = 'auto' | 'cpu' | 'cuda'

/** Where a task runs, and what to tell the user when that is not what they might expect. */
export interface DeviceDecision {
  device: 'cpu' | 'cuda'
  /** Set when `auto` fell back to the CPU: why, in plain words. */
  notice?: string
}

/**
 * `auto` takes the GPU when a usable one is there and says why not otherwise; `cuda` without a
 * usable GPU is the user's error, with the reason and the way out; `cpu` is always honoured.
 * `task` names the work in messages ("Training").
 */
export function chooseDevice(requested: DeviceRequest, cuda: CudaInfo, task: string): DeviceDecision {
  if (requested === 'cpu') return { device: 'cpu' }
  if (cuda.usable) return { device: 'cuda' }
  const reason = cuda.reason ?? 'no usable NVIDIA GPU was found'
  if (requested === 'cuda') {
    throw new ApiError('USER_ERROR', `${task} on the GPU is not possible here: ${reason}. Use --device cpu (or auto) to run on the CPU.`)
  }
  return { device: 'cpu', notice: `${task} runs on the CPU: ${reason}.` }
}
