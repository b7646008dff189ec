// Loads the native engine (native/addon, built by scripts/build-native.mjs) and gives it types.
// Only the engine worker loads it: a crash in native code must not take down the main process.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { ApiError } from '../contract/errors'
import type { SystemInfo } from '../contract/system'
import { projectRoot } from '../services/install-paths'
import type { CpuBenchmarkProgress, CpuBenchmarkResult } from './protocol'

/** Cancels one native operation; it stops between steps and rejects with code CANCELLED. */
export interface NativeCancelToken {
  cancel(): void
  readonly cancelled: boolean
}

/** The `code` on errors from the addon (attune::StatusCode names); callbacks' own errors pass through as thrown. */
export type NativeErrorCode = 'INVALID_ARGUMENT' | 'CANCELLED' | 'INTERNAL'

/** The addon's exports. Every function runs its work off the JS thread and returns a Promise. */
export interface EngineAddon {
  CancelToken: new () => NativeCancelToken
  systemInfo(): Promise<SystemInfo>
  /** `onProgress` is called at most ~10 times a second. */
  cpuBenchmark(
    seconds: number,
    onProgress: (progress: CpuBenchmarkProgress) => void,
    cancel: NativeCancelToken,
  ): Promise<CpuBenchmarkResult>
}

/** Where scripts/build-native.mjs puts the addon, relative to the project root. */
export const ADDON_RELATIVE_PATH = 'native/build/Release/attune_engine.node'

/** ATTUNE_ENGINE_ADDON overrides the location (e.g. a packaged app's unpacked copy). */
export function addonPath(): string {
  return process.env.ATTUNE_ENGINE_ADDON || join(projectRoot(), ADDON_RELATIVE_PATH)
}

export function loadAddon(path: string = addonPath()): EngineAddon {
  if (!existsSync(path)) {
    throw new ApiError('ENGINE_UNAVAILABLE', `The native engine is not built (${path} is missing): run npm install`)
  }
  try {
    return createRequire(import.meta.url)(path) as EngineAddon
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    throw new ApiError('ENGINE_UNAVAILABLE', `The native engine at ${path} could not be loaded (${message}): run npm run build:native`)
  }
}
