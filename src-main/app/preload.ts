import { contextBridge, ipcRenderer } from 'electron'
import { createBridge } from './bridge'

// The renderer's only door to the app (see bridge.ts for what it exposes and why).
contextBridge.exposeInMainWorld('attuneBridge', createBridge(ipcRenderer))
