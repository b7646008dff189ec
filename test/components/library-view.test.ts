import { flushPromises, mount } from '@vue/test-utils'
import { describe, expect, it, vi } from 'vitest'
import { ApiError } from '../../src-main/contract/errors'
import LibraryView from '../../src-renderer/views/LibraryView.vue'
import { fakeApi, sampleRun, withApi } from './fake-api'

describe('Library', () => {
  it('says plainly that there are no runs yet', async () => {
    const view = mount(LibraryView, withApi(fakeApi({ runsList: async () => [] })))
    await flushPromises()
    expect(view.get('[data-testid="runs-empty"]').text()).toBe(
      'No training runs yet. Runs you start from Train or with attune train appear here.',
    )
    expect(view.find('[data-testid="runs-table"]').exists()).toBe(false)
  })

  it('shows that it is loading until the runs arrive', async () => {
    let answer: (runs: []) => void = () => {}
    const view = mount(LibraryView, withApi(fakeApi({ runsList: () => new Promise((resolve) => (answer = resolve)) })))
    await flushPromises()
    expect(view.find('[data-testid="runs-loading"]').exists()).toBe(true)
    answer([])
    await flushPromises()
    expect(view.find('[data-testid="runs-loading"]').exists()).toBe(false)
    expect(view.find('[data-testid="runs-empty"]').exists()).toBe(true)
  })

  it('lists every run with its method, status, base model, dataset, steps and last loss', async () => {
    const runs = [
      sampleRun(),
      sampleRun({
        id: 'run-2',
        name: 'first-try',
        method: 'dora',
        status: 'failed',
        baseModel: null,
        dataset: null,
        steps: 3,
        lastLoss: null,
        error: 'The GPU ran out of memory at step 3.',
      }),
    ]
    const view = mount(LibraryView, withApi(fakeApi({ runsList: async () => runs })))
    await flushPromises()

    const headers = view.findAll('thead th').map((cell) => cell.text())
    expect(headers).toEqual(['Name', 'Method', 'Status', 'Base model', 'Dataset', 'Steps', 'Last loss', 'Created'])
    const rows = view.findAll('[data-testid="run-row"]')
    expect(rows).toHaveLength(2)
    const cells = (index: number) => rows[index]!.findAll('th, td').map((cell) => cell.text())
    expect(cells(0).slice(0, 7)).toEqual([
      'support-bot-v1',
      'QLoRA',
      'Completed',
      'Qwen/Qwen2.5-0.5B-Instruct',
      'support-chats.jsonl',
      (1200).toLocaleString(),
      '1.2346',
    ])
    expect(rows[0]!.find('time').attributes('datetime')).toBe('2026-03-01T10:30:00.000Z')
    expect(cells(1).slice(0, 7)).toEqual(['first-try', 'DoRA', expect.stringContaining('Failed'), '—', '—', '3', '—'])
    // A failed run says why, right under its status.
    expect(rows[1]!.get('[data-testid="run-error"]').text()).toBe('The GPU ran out of memory at step 3.')
  })

  it('shows the error and loads again on Retry', async () => {
    const runsList = vi
      .fn()
      .mockRejectedValueOnce(new ApiError('INTERNAL', 'The experiment log could not be opened.'))
      .mockResolvedValueOnce([sampleRun()])
    const view = mount(LibraryView, withApi(fakeApi({ runsList })))
    await flushPromises()

    expect(view.get('[data-testid="load-error-message"]').text()).toBe('The experiment log could not be opened.')
    expect(view.find('[data-testid="runs-table"]').exists()).toBe(false)

    await view.get('[data-testid="retry"]').trigger('click')
    await flushPromises()
    expect(runsList).toHaveBeenCalledTimes(2)
    expect(runsList).toHaveBeenLastCalledWith({})
    expect(view.find('[data-testid="load-error"]').exists()).toBe(false)
    expect(view.findAll('[data-testid="run-row"]')).toHaveLength(1)
  })
})
