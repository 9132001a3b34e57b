// "Take the workshop home": the export menu (every participant) and named versions
// (facilitators save, restore and copy; everyone lists, views read-only and compares).
// Everything is the server's: files come from /api/canvases/{id}/export.*, a version's
// read-only view is its SVG export, and the diff is computed by the server.
import { ApiError } from './api'
import { confirmDialog } from './dialogs'
import { h } from './dom'
import { saveToken } from './session'
import { toast } from './toast'
import './versions.css'

export const EXPORT_FORMATS: ReadonlyArray<{ ext: string; label: string }> = [
  { ext: 'pdf', label: 'PDF' },
  { ext: 'png', label: 'PNG image' },
  { ext: 'svg', label: 'SVG drawing' },
  { ext: 'md', label: 'Markdown report' },
  { ext: 'csv', label: 'CSV (spreadsheet)' },
  { ext: 'json', label: 'JSON (everything)' },
]

export interface VersionInfo {
  id: number
  name: string
  created_at: number
  created_by: string
  automatic: boolean
  size: number
}

interface NoteRef {
  id: string
  block: string | null
  text: string
}

export interface DiffGroup {
  org: string
  name: string
  added: NoteRef[]
  removed: NoteRef[]
  edited: Array<NoteRef & { before: string; after: string; fields: string[] }>
  moved: Array<NoteRef & { from: { block: string | null }; to: { block: string | null } }>
  votes: Array<NoteRef & { voter: string; before: unknown; after: unknown }>
  links_added: unknown[]
  links_removed: unknown[]
  comments_added?: Array<{ id: string; note: string; text: string; author_name: string; reply: boolean }>
  comments_resolved?: Array<{ id: string; note: string; text: string; author_name: string; reply: boolean }>
}

export interface DiffResult {
  base: number
  target: number | null
  orgs: DiffGroup[]
  totals: Record<string, number>
  rounds_closed?: Array<{ id: string; title: string; voters: number }>
}

const enc = encodeURIComponent

/** The lines a diff group reads as, e.g. "Added “app”", "Moved “x” from pains to gains". */
export function describeGroup(g: DiffGroup): string[] {
  const q = (t: string): string => `“${t.length > 60 ? t.slice(0, 59) + '…' : t}”`
  return [
    ...g.added.map((n) => `Added ${q(n.text)}`),
    ...g.removed.map((n) => `Removed ${q(n.text)}`),
    ...g.edited.map((n) => (n.fields.includes('text') ? `Edited ${q(n.before)} → ${q(n.after)}` : `Changed ${q(n.text)} (${n.fields.join(', ')})`)),
    ...g.moved.map((n) => (n.from.block !== n.to.block ? `Moved ${q(n.text)} from ${n.from.block ?? '?'} to ${n.to.block ?? '?'}` : `Moved ${q(n.text)} within its block`)),
    ...g.votes.map((n) => `${n.after === undefined || n.after === null ? 'Took back a vote on' : 'Voted on'} ${q(n.text)}`),
    ...g.links_added.map(() => 'Added a link'),
    ...g.links_removed.map(() => 'Removed a link'),
    ...(g.comments_added ?? []).map((c) => `${c.reply ? 'Replied' : 'Commented'} ${q(c.text)}`),
    ...(g.comments_resolved ?? []).map((c) => `Resolved the comment ${q(c.text)}`),
  ]
}

export function exportFilename(title: string, ext: string, version?: number): string {
  const stem = (title + (version ? `-v${version}` : '')).replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '').slice(0, 80) || 'canvas'
  return `${stem}.${ext}`
}

function when(s: number): string {
  const d = new Date(s * 1000)
  return Number.isNaN(d.getTime()) ? String(s) : d.toLocaleString()
}

export class VersionsPanel {
  readonly el: HTMLElement
  private readonly list: HTMLElement
  private readonly diffEl: HTMLElement
  private versions: VersionInfo[] = []
  private viewUrl: string | null = null
  title = 'canvas'

  constructor(
    private readonly canvasId: string,
    private readonly token: string,
    private readonly facilitator: boolean,
  ) {
    const menu = h('ul', { class: 'export-menu', 'aria-label': 'Download the canvas' })
    for (const f of EXPORT_FORMATS) {
      const btn = h('button', { type: 'button', class: 'btn btn-small', 'data-export': f.ext }, f.label)
      btn.addEventListener('click', () => void this.download(f.ext))
      menu.append(h('li', {}, btn))
    }
    this.list = h('ul', { class: 'version-list', 'aria-label': 'Saved versions' })
    this.diffEl = h('section', { class: 'version-diff', 'aria-live': 'polite', hidden: true })
    let form: HTMLFormElement | null = null
    if (facilitator) {
      const name = h('input', { id: 'version-name', name: 'version_name', maxlength: 120, autocomplete: 'off', placeholder: 'after round 1' })
      form = h(
        'form',
        { class: 'version-form' },
        h('label', { for: 'version-name' }, 'Save a version named'),
        h('div', { class: 'row' }, name, h('button', { type: 'submit', class: 'btn' }, 'Save version')),
      )
      form.addEventListener('submit', (e) => {
        e.preventDefault()
        const value = name.value.trim()
        if (!value) return
        void this.save(value).then((ok) => {
          if (ok) name.value = ''
        })
      })
    }
    this.el = h(
      'section',
      { class: 'panel-side versions', 'aria-labelledby': 'versions-heading' },
      h('h2', { id: 'versions-heading' }, 'Export and versions'),
      h('h3', {}, 'Download'),
      menu,
      h('h3', {}, 'Versions'),
      form,
      this.list,
      this.diffEl,
    )
    void this.refresh()
  }

  private async call(method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}` }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    const res = await fetch(path, { method, headers, body: body === undefined ? null : JSON.stringify(body) })
    if (!res.ok) {
      let detail = res.statusText
      try {
        const j = (await res.json()) as { detail?: unknown }
        if (typeof j.detail === 'string') detail = j.detail
      } catch {
        // not JSON
      }
      throw new ApiError(res.status, detail)
    }
    return res
  }

  private base(): string {
    return `/api/canvases/${enc(this.canvasId)}`
  }

  async download(ext: string, version?: number): Promise<void> {
    try {
      const res = await this.call('GET', `${this.base()}/export.${ext}${version ? `?version=${version}` : ''}`)
      const url = URL.createObjectURL(await res.blob())
      const a = h('a', { href: url, download: exportFilename(this.title, ext, version), hidden: true })
      document.body.append(a)
      a.click()
      a.remove()
      setTimeout(() => URL.revokeObjectURL(url), 60_000)
    } catch (e) {
      toast(`Could not export: ${e instanceof ApiError ? e.detail : String(e)}`, 'error')
    }
  }

  async refresh(): Promise<void> {
    try {
      this.versions = (await (await this.call('GET', `${this.base()}/versions`)).json()) as VersionInfo[]
      this.render()
    } catch (e) {
      if (!(e instanceof ApiError) || ![401, 403, 404, 410].includes(e.status)) {
        toast(`Could not load versions: ${e instanceof ApiError ? e.detail : String(e)}`, 'error')
      }
    }
  }

  private async save(name: string): Promise<boolean> {
    try {
      await this.call('POST', `${this.base()}/versions`, { name })
      toast(`Version “${name}” saved`)
      await this.refresh()
      return true
    } catch (e) {
      toast(`Could not save the version: ${e instanceof ApiError ? e.detail : String(e)}`, 'error')
      return false
    }
  }

  private async restore(v: VersionInfo): Promise<void> {
    const ok = await confirmDialog(`Restore “${v.name}” for everyone? The canvas as it is now is kept as a version first.`, 'Restore')
    if (!ok) return
    try {
      await this.call('POST', `${this.base()}/versions/${v.id}/restore`)
      toast(`Restored “${v.name}”`)
      await this.refresh()
    } catch (e) {
      toast(`Could not restore: ${e instanceof ApiError ? e.detail : String(e)}`, 'error')
    }
  }

  private async copy(v: VersionInfo): Promise<void> {
    try {
      const res = await this.call('POST', `${this.base()}/versions/${v.id}/copy`, {})
      const made = (await res.json()) as { id: string; title: string; facilitator_token: string }
      saveToken(made.id, made.facilitator_token)
      toast(`“${made.title}” created`)
      window.open(`/c/${enc(made.id)}`, '_blank', 'noopener')
    } catch (e) {
      toast(`Could not copy: ${e instanceof ApiError ? e.detail : String(e)}`, 'error')
    }
  }

  async showDiff(v: VersionInfo): Promise<void> {
    try {
      const d = (await (await this.call('GET', `${this.base()}/versions/${v.id}/diff`)).json()) as DiffResult
      const groups = d.orgs.map((g) =>
        h('div', { class: 'diff-org', 'data-org': g.org }, h('h4', {}, g.name), h('ul', {}, ...describeGroup(g).map((line) => h('li', {}, line)))),
      )
      const closed = d.rounds_closed ?? []
      if (closed.length) {
        const lines = closed.map((r) => h('li', {}, `Vote round closed: “${r.title || r.id}” (${r.voters} voter${r.voters === 1 ? '' : 's'})`))
        groups.push(h('div', { class: 'diff-org diff-rounds' }, h('h4', {}, 'Vote rounds'), h('ul', {}, ...lines)))
      }
      this.diffEl.replaceChildren(
        h('h3', { id: 'diff-heading' }, `Changes since “${v.name}”`),
        ...(groups.length ? groups : [h('p', { class: 'muted' }, 'No changes.')]),
      )
      this.diffEl.hidden = false
    } catch (e) {
      toast(`Could not compare: ${e instanceof ApiError ? e.detail : String(e)}`, 'error')
    }
  }

  /** The version read-only, as the board was laid out (its SVG export), in a modal dialog. */
  async view(v: VersionInfo): Promise<void> {
    try {
      const res = await this.call('GET', `${this.base()}/export.svg?version=${v.id}`)
      if (this.viewUrl) URL.revokeObjectURL(this.viewUrl)
      const url = (this.viewUrl = URL.createObjectURL(await res.blob()))
      const previous = document.activeElement instanceof HTMLElement ? document.activeElement : null
      const dialog = h('dialog', { class: 'dialog version-dialog', 'aria-labelledby': 'version-view-title' })
      const close = h('button', { type: 'button', class: 'btn' }, 'Close')
      const done = (): void => {
        dialog.close()
        dialog.remove()
        URL.revokeObjectURL(url)
        if (this.viewUrl === url) this.viewUrl = null
        if (previous?.isConnected) previous.focus()
      }
      close.addEventListener('click', done)
      dialog.addEventListener('cancel', (e) => {
        e.preventDefault()
        done()
      })
      dialog.append(
        h('h2', { id: 'version-view-title' }, `“${v.name}” (read-only)`),
        h('img', { src: url, alt: `The board as it was in “${v.name}”`, class: 'version-image' }),
        h('div', { class: 'dialog-actions' }, close),
      )
      document.body.append(dialog)
      dialog.showModal()
      close.focus()
    } catch (e) {
      toast(`Could not open the version: ${e instanceof ApiError ? e.detail : String(e)}`, 'error')
    }
  }

  private render(): void {
    const items = this.versions.map((v) => {
      const button = (label: string, action: () => void, extra: Record<string, string> = {}): HTMLButtonElement => {
        const b = h('button', { type: 'button', class: 'btn btn-small', ...extra }, label)
        b.setAttribute('aria-label', `${label}: ${v.name}`)
        b.addEventListener('click', action)
        return b
      }
      const actions = [
        button('View', () => void this.view(v)),
        button('Changes since', () => void this.showDiff(v)),
        button('PDF', () => void this.download('pdf', v.id)),
      ]
      if (this.facilitator) {
        actions.push(button('Restore', () => void this.restore(v), { class: 'btn btn-small btn-danger' }))
        actions.push(button('Copy as new canvas', () => void this.copy(v)))
      }
      return h(
        'li',
        { class: v.automatic ? 'version automatic' : 'version', 'data-version-id': v.id },
        h('div', { class: 'version-meta' }, h('strong', {}, v.name), ` · ${when(v.created_at)}${v.automatic ? ' · automatic' : ''}`),
        h('div', { class: 'version-actions' }, ...actions),
      )
    })
    if (!items.length) items.push(h('li', { class: 'muted' }, 'No versions yet.'))
    this.list.replaceChildren(...items)
  }
}
