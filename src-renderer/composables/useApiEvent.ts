import { onScopeDispose } from 'vue'
import type { EventName, EventOf } from '../../src-main/contract/api'
import { useApi } from './useApi'

/** Listens to an API event for as long as the calling component (or effect scope) lives. */
export function useApiEvent<E extends EventName>(event: E, listener: (payload: EventOf<E>) => void): void {
  const unsubscribe = useApi().on(event, listener)
  onScopeDispose(unsubscribe)
}
