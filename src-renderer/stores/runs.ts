import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { RunSummary } from '../../src-main/contract/runs'
import { errorMessage } from '../format'
import { useApi } from '../composables/useApi'

/** The training runs recorded in the experiment log, in the order the services list them. */
export const useRunsStore = defineStore('runs', () => {
  const api = useApi()
  const runs = ref<RunSummary[]>()
  const error = ref<string>()

  async function load(): Promise<void> {
    error.value = undefined
    try {
      runs.value = await api.runsList({})
    } catch (caught) {
      error.value = errorMessage(caught)
    }
  }

  return { runs, error, load }
})
