import type { Component } from 'vue'
import { createRouter, createWebHashHistory, type Router, type RouterHistory } from 'vue-router'
import { screens, type ScreenName } from './screens'
import ChatView from './views/ChatView.vue'
import DataView from './views/DataView.vue'
import ExportView from './views/ExportView.vue'
import LibraryView from './views/LibraryView.vue'
import ModelsView from './views/ModelsView.vue'
import SettingsView from './views/SettingsView.vue'
import TrainView from './views/TrainView.vue'

declare module 'vue-router' {
  interface RouteMeta {
    /** The screen's name, shown in the header. */
    title?: string
  }
}

const views: Record<ScreenName, Component> = {
  models: ModelsView,
  data: DataView,
  train: TrainView,
  chat: ChatView,
  library: LibraryView,
  export: ExportView,
  settings: SettingsView,
}

/**
 * Hash history, because the desktop app loads the page from file:// and only the server can
 * answer other paths. A factory rather than a module-level router: hash history remembers the
 * page address when it is created, which must happen after the access token was taken out of it.
 */
export function createAppRouter(history: RouterHistory = createWebHashHistory()): Router {
  return createRouter({
    history,
    routes: [
      { path: '/', redirect: '/models' },
      ...screens.map((screen) => ({
        path: `/${screen.name}`,
        name: screen.name,
        component: views[screen.name],
        meta: { title: screen.title },
      })),
      { path: '/:unknown(.*)*', redirect: '/models' },
    ],
  })
}
