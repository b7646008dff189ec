const storageKey = 'attune.accessToken'

type PageWindow = Pick<Window, 'location' | 'history' | 'sessionStorage'>

/**
 * The token `attune serve` put in the link it printed (`?token=…`). It is moved out of the
 * address bar at once, so it does not linger in history, bookmarks or screenshots, and kept in
 * this tab's sessionStorage so a reload still works.
 */
export function takeAccessToken(page: PageWindow = window): string | undefined {
  const url = new URL(page.location.href)
  const fromLink = url.searchParams.get('token')
  if (!fromLink) return page.sessionStorage.getItem(storageKey) ?? undefined
  page.sessionStorage.setItem(storageKey, fromLink)
  url.searchParams.delete('token')
  page.history.replaceState(page.history.state, '', url)
  return fromLink
}

/** The API socket on the server that served this page (`wss:` when the page came over https). */
export function apiSocketUrl(location: Pick<Location, 'protocol' | 'host'>, token: string): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:'
  return `${scheme}//${location.host}/api?token=${encodeURIComponent(token)}`
}
