import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { AppInfo, SystemInfo } from '../../src-main/contract/system'
import { errorMessage } from '../format'
import { useApi } from '../composables/useApi'

/** This computer as the engine sees it, and where Attune keeps its files. */
export const useSystemStore = defineStore('system', () => {
  const api = useApi()
  const system = ref<SystemInfo>()
  const app = ref<AppInfo>()
  const error = ref<string>()

  async function load(): Promise<void> {
    error.value = undefined
    try {
      ;[system.value, app.value] = await Promise.all([api.systemInfo({}), api.appInfo({})])
    } catch (caught) {
      error.value = errorMessage(caught)
    }
  }

  return { system, app, error, load }
})
