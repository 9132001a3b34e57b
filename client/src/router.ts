// Four routes (the list, a canvas, its private drafts, an invite), all served as index.html.
export type Route =
  | { kind: 'list' }
  | { kind: 'canvas'; id: string }
  | { kind: 'drafts'; id: string; org: string | null }
  | { kind: 'invite'; id: string }
  | { kind: 'notfound'; path: string }

export function parseRoute(pathname: string, search = ''): Route {
  const path = pathname.replace(/\/+$/, '') || '/'
  if (path === '/') return { kind: 'list' }
  const drafts = /^\/c\/([^/]+)\/drafts$/.exec(path)
  if (drafts && drafts[1]) return { kind: 'drafts', id: decodeURIComponent(drafts[1]), org: new URLSearchParams(search).get('org') }
  const m = /^\/(c|i)\/([^/]+)$/.exec(path)
  if (m && m[2]) {
    const id = decodeURIComponent(m[2])
    return m[1] === 'c' ? { kind: 'canvas', id } : { kind: 'invite', id }
  }
  return { kind: 'notfound', path }
}

export function canvasPath(id: string): string {
  return `/c/${encodeURIComponent(id)}`
}

type Listener = () => void
let listener: Listener | null = null

export function onNavigate(fn: Listener): void {
  listener = fn
  window.addEventListener('popstate', () => listener?.())
}

export function navigate(path: string): void {
  if (location.pathname + location.search !== path) history.pushState(null, '', path)
  listener?.()
}

/** Same-origin links navigate in-app; modified clicks still open new tabs. */
export function interceptLinks(root: HTMLElement): void {
  root.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return
    const a = (e.target as HTMLElement).closest('a')
    if (!a || a.target || a.origin !== location.origin || a.hasAttribute('download')) return
    e.preventDefault()
    navigate(a.pathname + a.search)
  })
}
