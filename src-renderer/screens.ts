/** The screens in the order a person goes through them to make an adapter. */
export const flowScreens = [
  { name: 'models', title: 'Models' },
  { name: 'data', title: 'Data' },
  { name: 'train', title: 'Train' },
  { name: 'chat', title: 'Chat' },
  { name: 'library', title: 'Library' },
  { name: 'export', title: 'Export' },
] as const

/** Not a step of the flow, so the navigation keeps it apart. */
export const settingsScreen = { name: 'settings', title: 'Settings' } as const

export const screens = [...flowScreens, settingsScreen]

export type ScreenName = (typeof screens)[number]['name']
