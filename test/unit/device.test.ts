import { describe, expect, it } from 'vitest'
import { ApiError } from '../../src-main/contract/errors'
import type { CudaInfo } from '../../src-main/contract/system'
import { chooseDevice } from '../../src-main/engine/device'

const gpu: CudaInfo = { usable: true, compiled: true, driverVersion: '13.0', runtimeVersion: '13.0', devices: [{ index: 0, name: 'NVIDIA H100', memoryBytes: 80e9, computeCapability: '9.0' }] }
const none: CudaInfo = { usable: false, compiled: true, runtimeVersion: '13.0', reason: 'No NVIDIA driver was found (CUDA error 35)', devices: [] }

describe('chooseDevice', () => {
  it('takes a usable GPU for auto and cuda, silently', () => {
    expect(chooseDevice('auto', gpu, 'Training')).toEqual({ device: 'cuda' })
    expect(chooseDevice('cuda', gpu, 'Training')).toEqual({ device: 'cuda' })
  })

  it('honours cpu even with a GPU there', () => {
    expect(chooseDevice('cpu', gpu, 'Training')).toEqual({ device: 'cpu' })
  })

  it('falls back to the CPU for auto and says why', () => {
    expect(chooseDevice('auto', none, 'Training')).toEqual({ device: 'cpu', notice: 'Training runs on the CPU: No NVIDIA driver was found (CUDA error 35).' })
  })

  it('refuses cuda without a usable GPU, with the reason and the way out', () => {
    const attempt = () => chooseDevice('cuda', none, 'Training')
    expect(attempt).toThrow(ApiError)
    expect(attempt).toThrow('Training on the GPU is not possible here: No NVIDIA driver was found (CUDA error 35). Use --device cpu (or auto) to run on the CPU.')
    try {
      attempt()
    } catch (error) {
      expect((error as ApiError).code).toBe('USER_ERROR')
    }
  })
})
