import { createApp } from 'vue'
import { createPinia } from 'pinia'
import './styles.css'
import App from './App.vue'
import { chooseTransport } from './api/transport'
import MissingTokenScreen from './components/MissingTokenScreen.vue'
import { apiKey, connectionKey } from './composables/useApi'
import { createAppRouter } from './router'

// The transport is chosen before the router is created: taking the access token out of the
// address bar changes the address the hash history starts from.
const transport = chooseTransport()

if (transport.kind === 'missing-token') {
  createApp(MissingTokenScreen).mount('#app')
} else {
  createApp(App)
    .use(createPinia())
    .use(createAppRouter())
    .provide(apiKey, transport.api)
    .provide(connectionKey, transport.connection)
    .mount('#app')
}
