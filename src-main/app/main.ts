import { app, BrowserWindow, dialog, ipcMain, utilityProcess } from 'electron'
import { pathToFileURL } from 'node:url'
import { openServices, type AttuneServices } from '../services/bootstrap'
import { appVersion, builtPaths } from '../services/install-paths'
import { resolveHomeDir } from '../services/home'
import { utilitySpawner } from '../engine/utility-spawner'
import { electronSqliteBinding } from './sqlite-binding'
import { hardenWebContents } from './security'
import { bindIpc } from './ipc-binding'

// The desktop app's main process: one secure window, the services, and the IPC binding of the
// contract. Heavy work never runs here: the engine lives in a utility process.
app.setName('Attune')

const paths = builtPaths()
const rendererUrl = pathToFileURL(`${paths.renderer}/index.html`).href
let services: AttuneServices | undefined

function createWindow(): void {
  const window = new BrowserWindow({
    width: 1280,
    height: 820,
    minWidth: 900,
    minHeight: 600,
    show: false,
    title: 'Attune',
    webPreferences: {
      preload: paths.preload,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
    },
  })
  window.once('ready-to-show', () => window.show())
  void window.loadURL(rendererUrl)
}

app.on('web-contents-created', (_event, contents) => hardenWebContents(contents, rendererUrl))

app.whenReady().then(() => {
  try {
    services = openServices({
      homeDir: resolveHomeDir(undefined),
      spawner: utilitySpawner(utilityProcess, paths.engineWorker),
      version: appVersion(),
      sqliteBinding: electronSqliteBinding(),
      log: (message) => console.warn(message),
    })
  } catch (error) {
    // Without its log Attune cannot work: say why (the message names the file and the fix).
    dialog.showErrorBox('Attune cannot open its data folder', error instanceof Error ? error.message : String(error))
    app.exit(1)
    return
  }
  bindIpc({
    ipcMain,
    router: services.router,
    events: services.events,
    // Only our own page may call the API (never a frame that navigated elsewhere).
    isTrustedSender: (url) => url.split('#')[0] === rendererUrl,
    broadcast: (channel, payload) => BrowserWindow.getAllWindows().forEach((window) => window.webContents.send(channel, payload)),
  })
  createWindow()
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow()
  })
})

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit()
})

app.on('will-quit', () => {
  void services?.close()
})
