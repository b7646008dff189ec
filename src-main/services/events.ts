import type { EventName, EventOf, Unsubscribe } from '../contract/api'

type Listener<E extends EventName> = (payload: EventOf<E>) => void

/** Fan-out of service events to every transport (IPC windows, WebSocket clients, the CLI). */
export class EventHub {
  private readonly listeners = new Map<EventName, Set<Listener<never>>>()

  emit<E extends EventName>(event: E, payload: EventOf<E>): void {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        ;(listener as Listener<E>)(payload)
      } catch (error) {
        // One broken subscriber (a closed window, say) must not stop the others.
        console.error(`attune: listener for "${event}" failed:`, error)
      }
    }
  }

  on<E extends EventName>(event: E, listener: Listener<E>): Unsubscribe {
    let set = this.listeners.get(event)
    if (!set) this.listeners.set(event, (set = new Set()))
    set.add(listener as Listener<never>)
    return () => set.delete(listener as Listener<never>)
  }
}
