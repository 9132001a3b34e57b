// Private drafts: an organization's own draft space (/c/{id}/drafts), the facilitator's counts
// and reveal controls, and the announcement of a reveal. The server keeps drafts private (a
// document of their own behind /drafts/{canvas}); this module only shows them differently.
import './drafts.css'
import { ApiError } from './api'
import { h, setText } from './dom'
import { lockIcon } from './icons'
import type { OrgView } from './model'
import type { Claims } from './session'
import { toast } from './toast'

/** Which draft space a canvas page shows: the member's own, or the facilitator's choice. */
export interface DraftMode {
  org: string | null
}

export function draftsWsBase(loc: Pick<Location, 'protocol' | 'host'> = location): string {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/drafts`
}

export function draftsPath(canvasId: string, org: string | null = null): string {
  const base = `/c/${encodeURIComponent(canvasId)}/drafts`
  return org ? `${base}?org=${encodeURIComponent(org)}` : base
}

/** Provider params for a draft space: a facilitator names the organization. */
export function draftParams(token: string, mode: DraftMode): Record<string, string> {
  return mode.org ? { token, org: mode.org } : { token }
}

export function draftOrg(me: Claims, mode: DraftMode): string {
  return mode.org ?? me.org
}

/** The banner that says, before anything else, who can see this page. */
export function draftBanner(canvasId: string): { el: HTMLElement; setOrg(org: OrgView): void } {
  const name = h('strong', { class: 'draft-org' }, '…')
  const el = h(
    'div',
    { class: 'draft-banner', role: 'note', id: 'draft-banner' },
    h('span', { class: 'draft-lock', 'aria-hidden': 'true' }, lockIcon(true)),
    h('span', {}, 'Private to ', name, ' — only your organization sees these drafts until they are revealed.'),
    h('a', { href: `/c/${encodeURIComponent(canvasId)}`, class: 'btn btn-small' }, 'Back to the shared canvas'),
  )
  return {
    el,
    setOrg(org: OrgView) {
      setText(name, org.name)
      el.style.setProperty('--draft-color', org.color)
    },
  }
}

export interface DraftsState {
  settings: { facilitator_access: boolean; self_publish: boolean }
  counts: Record<string, number>
}

export interface RevealResult {
  revealed: Record<string, string[]>
  conflicts: string[]
  count: number
  at: number
}

async function call<T>(method: string, path: string, token: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json', Authorization: `Bearer ${token}` }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const res = await fetch(path, { method, headers, body: body === undefined ? null : JSON.stringify(body) })
  if (!res.ok) {
    let detail = res.statusText
    try {
      const b = (await res.json()) as { detail?: unknown }
      if (typeof b.detail === 'string') detail = b.detail
    } catch {
      // not JSON
    }
    throw new ApiError(res.status, detail)
  }
  return (await res.json()) as T
}

export const draftsApi = {
  state: (canvasId: string, token: string) => call<DraftsState>('GET', `/api/canvases/${encodeURIComponent(canvasId)}/drafts`, token),
  settings: (canvasId: string, token: string, patch: Partial<DraftsState['settings']>) =>
    call<DraftsState['settings']>('PUT', `/api/canvases/${encodeURIComponent(canvasId)}/drafts/settings`, token, patch),
  reveal: (canvasId: string, token: string, orgs: string[] | null) =>
    call<RevealResult>('POST', `/api/canvases/${encodeURIComponent(canvasId)}/drafts/reveal`, token, orgs ? { orgs } : {}),
}

/** What a reveal recorded in meta.last_reveal, as a sentence (null when there is none). */
export function revealSentence(record: unknown, orgs: Map<string, OrgView>): string | null {
  if (!record || typeof record !== 'object') return null
  const r = record as { count?: unknown; orgs?: unknown; by?: unknown }
  const count = typeof r.count === 'number' ? r.count : 0
  if (count <= 0) return null
  const names = Array.isArray(r.orgs) ? r.orgs.map((o) => orgs.get(String(o))?.name ?? String(o)) : []
  const who = names.length ? ` of ${names.join(', ')}` : ''
  return `${count} ${count === 1 ? 'draft' : 'drafts'}${who} revealed${typeof r.by === 'string' && r.by ? ` by ${r.by}` : ''}`
}

/** Announces each new reveal once (not the one already there when the page loaded). */
export class RevealWatcher {
  private seen: number | null = null

  constructor(private readonly onReveal: (sentence: string) => void) {}

  update(record: unknown, orgs: Map<string, OrgView>, synced: boolean): void {
    const at = record && typeof record === 'object' ? Number((record as { at?: unknown }).at) || 0 : 0
    if (!synced) return
    if (this.seen === null) {
      this.seen = at
      return
    }
    if (at > this.seen) {
      this.seen = at
      const s = revealSentence(record, orgs)
      if (s) this.onReveal(s)
    }
  }
}

const POLL_MS = 3000

/** Sidebar panel on the shared canvas: a way into one's draft space; for the facilitator the
 * number of drafts per organization (numbers only), the reveal controls and the settings. */
export class DraftsPanel {
  readonly el: HTMLElement
  private readonly countsEl: HTMLElement
  private readonly controls: HTMLElement
  private readonly accessBox: HTMLInputElement
  private readonly publishBox: HTMLInputElement
  private readonly publishBtn: HTMLButtonElement
  private orgs = new Map<string, OrgView>()
  private state: DraftsState | null = null
  private timer: ReturnType<typeof setInterval> | null = null

  constructor(
    private readonly canvasId: string,
    private readonly token: string,
    private readonly me: Claims,
  ) {
    const facilitator = me.role === 'facilitator'
    this.countsEl = h('ul', { class: 'draft-counts', id: 'draft-counts', 'aria-label': 'Drafts per organization' })
    this.accessBox = h('input', { type: 'checkbox', id: 'drafts-facilitator-access' })
    this.publishBox = h('input', { type: 'checkbox', id: 'drafts-self-publish' })
    this.accessBox.addEventListener('change', () => void this.setting({ facilitator_access: this.accessBox.checked }))
    this.publishBox.addEventListener('change', () => void this.setting({ self_publish: this.publishBox.checked }))
    const revealAll = h('button', { type: 'button', class: 'btn btn-primary', id: 'reveal-all' }, 'Reveal all drafts')
    revealAll.addEventListener('click', () => void this.reveal(null))
    this.publishBtn = h('button', { type: 'button', class: 'btn', id: 'publish-own', hidden: true }, 'Publish our drafts')
    this.publishBtn.addEventListener('click', () => void this.reveal([me.org]))
    this.controls = facilitator
      ? h(
          'div',
          { class: 'draft-controls' },
          revealAll,
          h('label', { class: 'check' }, this.accessBox, ' I may open draft spaces'),
          h('label', { class: 'check' }, this.publishBox, ' Organizations may publish their own'),
        )
      : h('div', { class: 'draft-controls' }, this.publishBtn)
    const open = me.org ? h('a', { href: draftsPath(canvasId), class: 'btn', id: 'open-drafts' }, 'Open our private drafts') : null
    this.el = h(
      'section',
      { class: 'panel-side drafts-panel', 'aria-labelledby': 'drafts-heading' },
      h('h2', { id: 'drafts-heading' }, 'Private drafts'),
      open,
      this.countsEl,
      this.controls,
    )
    void this.refresh()
    // The counts are a number per organization over HTTP: polled while the tab is seen (every
    // participant polls, so hidden tabs must not), and fetched at once when it is seen again.
    this.timer = setInterval(() => {
      if (!document.hidden) void this.refresh()
    }, POLL_MS)
    document.addEventListener('visibilitychange', this.onVisible)
  }

  private readonly onVisible = (): void => {
    if (!document.hidden) void this.refresh()
  }

  setOrgs(orgs: Map<string, OrgView>): void {
    this.orgs = orgs
    this.renderCounts()
  }

  async refresh(): Promise<void> {
    try {
      this.state = await draftsApi.state(this.canvasId, this.token)
    } catch {
      return // shown again on the next poll; the shared canvas works without it
    }
    this.accessBox.checked = this.state.settings.facilitator_access
    this.publishBox.checked = this.state.settings.self_publish
    this.publishBtn.hidden = !(this.state.settings.self_publish && this.me.role === 'editor')
    this.renderCounts()
  }

  private renderCounts(): void {
    const counts = this.state?.counts ?? {}
    const facilitator = this.me.role === 'facilitator'
    this.countsEl.replaceChildren(
      ...Object.entries(counts).map(([org, n]) => {
        const view = this.orgs.get(org)
        const reveal = facilitator ? h('button', { type: 'button', class: 'btn btn-small', 'data-reveal-org': org, disabled: n === 0 }, 'Reveal') : null
        reveal?.addEventListener('click', () => void this.reveal([org]))
        const peek =
          facilitator && this.state?.settings.facilitator_access ? h('a', { href: draftsPath(this.canvasId, org), class: 'btn btn-small' }, 'Open') : null
        return h(
          'li',
          { 'data-org': org, style: `--c:${view?.color ?? '#888'}` },
          h('span', { class: 'dot', 'aria-hidden': 'true' }),
          h('span', { class: 'draft-count-name' }, view?.name ?? org),
          h('span', { class: 'draft-count', 'data-count': String(n) }, `${n} ${n === 1 ? 'draft' : 'drafts'}`),
          reveal,
          peek,
        )
      }),
    )
  }

  private async setting(patch: Partial<DraftsState['settings']>): Promise<void> {
    try {
      await draftsApi.settings(this.canvasId, this.token, patch)
    } catch (err) {
      toast(`Could not change the draft settings: ${err instanceof ApiError ? err.detail : String(err)}`, 'error')
    }
    await this.refresh()
  }

  private async reveal(orgs: string[] | null): Promise<void> {
    try {
      const result = await draftsApi.reveal(this.canvasId, this.token, orgs)
      if (result.count === 0) toast('There were no drafts to reveal')
      if (result.conflicts.length) toast(`${result.conflicts.length} drafts were kept back: their id is taken on the canvas`, 'error')
    } catch (err) {
      toast(`Could not reveal: ${err instanceof ApiError ? err.detail : String(err)}`, 'error')
    }
    await this.refresh()
  }

  destroy(): void {
    if (this.timer) clearInterval(this.timer)
    document.removeEventListener('visibilitychange', this.onVisible)
  }
}
