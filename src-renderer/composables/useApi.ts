import { inject, type InjectionKey, type Ref } from 'vue'
import type { AttuneApi } from '../../src-main/contract/api'
import type { ConnectionState } from '../api/ws-client'

// Provided once in main.ts (and by tests with a fake), so nothing below the app knows or cares
// which transport it talks through.
export const apiKey: InjectionKey<AttuneApi> = Symbol('AttuneApi')
export const connectionKey: InjectionKey<Readonly<Ref<ConnectionState>>> = Symbol('ConnectionState')

export function useApi(): AttuneApi {
  return injected(apiKey, 'the Attune API')
}

/** Whether the services can be reached right now (always `open` in the desktop app). */
export function useConnectionState(): Readonly<Ref<ConnectionState>> {
  return injected(connectionKey, 'the connection state')
}

function injected<T>(key: InjectionKey<T>, what: string): T {
  const value = inject(key)
  if (value === undefined) throw new Error(`The app did not provide ${what}; see src-renderer/main.ts.`)
  return value
}
