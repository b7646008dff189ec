import { describe, expect, it } from 'vitest'
import { events, operations } from '../../src-main/contract/api'
import { eventNames, operationNames } from '../../src-main/contract/names'
import { ApiError, ApiErrorShape } from '../../src-main/contract/errors'
import { SystemInfo } from '../../src-main/contract/system'
import { RunSummary } from '../../src-main/contract/runs'

describe('the contract', () => {
  it('has schemas for exactly the operations and events the preload knows by name', () => {
    expect(Object.keys(operations).sort()).toEqual([...operationNames].sort())
    expect(Object.keys(events).sort()).toEqual([...eventNames].sort())
  })

  it('validates a system report and rejects a malformed one', () => {
    const good = {
      cpu: { model: 'x', threads: 2 },
      memory: { totalBytes: 1, availableBytes: 1 },
      os: { platform: 'linux', arch: 'x64' },
      engine: { version: '0.1.0', backends: ['cpu'] },
      cuda: { usable: false, compiled: true, reason: 'No NVIDIA driver was found', devices: [] },
    }
    expect(SystemInfo.safeParse(good).success).toBe(true)
    expect(SystemInfo.safeParse({ ...good, cpu: { model: 'x', threads: 0 } }).success).toBe(false)
    expect(SystemInfo.safeParse({ ...good, engine: { version: '0.1.0', backends: ['tpu'] } }).success).toBe(false)
    expect(SystemInfo.safeParse({ ...good, cuda: { ...good.cuda, devices: [{ index: -1, name: 'g', memoryBytes: 1, computeCapability: '8.0' }] } }).success).toBe(false)
  })

  it('accepts only known run methods and statuses', () => {
    const run = { id: 'a', name: 'n', method: 'dora', status: 'running', baseModel: null, dataset: null, createdAt: 't', finishedAt: null, steps: 0, lastLoss: null, error: null }
    expect(RunSummary.safeParse(run).success).toBe(true)
    expect(RunSummary.safeParse({ ...run, method: 'full' }).success).toBe(false)
    expect(RunSummary.safeParse({ ...run, status: 'exploded' }).success).toBe(false)
  })

  it('round-trips an ApiError through its wire shape', () => {
    const error = new ApiError('NOT_FOUND', 'No run with id 7.', ['id'])
    const shape = ApiErrorShape.parse(JSON.parse(JSON.stringify(error.toShape())))
    const back = ApiError.fromShape(shape)
    expect(back).toBeInstanceOf(ApiError)
    expect([back.code, back.message, back.details]).toEqual(['NOT_FOUND', 'No run with id 7.', ['id']])
    expect(ApiErrorShape.safeParse({ code: 'WHATEVER', message: 'x' }).success).toBe(false)
  })
})
