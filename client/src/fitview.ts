// Fit across partners on the canvas page: lines between linked notes (drawn in canvas
// coordinates inside the board's world from the board's own note boxes, so pan and zoom move
// them with the world's transform and nothing reads layout; redrawn, once a frame at most, only
// when a link, an end note or the layout changes), handles to drag a link from, "L" on a focused note to link from the keyboard, and a view with the
// contribution map (from the server), the partners' value exchange and the list of links.
import './fit.css'
import * as Y from 'yjs'
import { excerpt } from './a11y'
import { NEUTRAL_COLOR } from './colors'
import { chooseDialog } from './dialogs'
import { h, setText } from './dom'
import {
  CUSTOMER,
  EXCHANGE_KINDS,
  KIND_LABELS,
  OVERLAP_MARKS,
  addArrow,
  addLink,
  fetchContribution,
  fitDoc,
  linkKind,
  liveLinks,
  mayChangeArrow,
  mayChangeLink,
  mayLinkFrom,
  readArrows,
  readLinks,
  removeEntry,
  setOverlap,
  setStrength,
  type ArrowInfo,
  type ContributionMap,
  type FitDoc,
  type LinkInfo,
  type Strength,
} from './fitmodel'
import type { Board } from './board'
import { FrameScheduler } from './frame'
import { allBlocks, allNotes, allOrgs, orgLabel, type CanvasDoc, type NoteInfo } from './model'
import { mayEditNote, type Claims } from './session'

export interface FitHost {
  readonly cdoc: CanvasDoc
  readonly origin: unknown
  readonly canvasId: string
  readonly token: string
  readonly me: Claims
  readonly board: Board
  protectNotes(): boolean
  /** The facilitator froze the canvas: no new links from anyone. */
  frozen(): boolean
  refused(message: string): void
}

const SVG = 'http://www.w3.org/2000/svg'
const ROW_LABELS: Readonly<Record<string, string>> = {
  jobs: 'job',
  pains: 'pain',
  gains: 'gain',
  'key-resources': 'key resource',
  'key-activities': 'key activity',
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v))
  return el
}

interface Box {
  x: number
  y: number
  w: number
  h: number
}

/** Where the segment from the centre of `a` towards the centre of `b` leaves `a`'s box. */
export function edgePoint(a: Box, b: Box): { x: number; y: number } {
  const cx = a.x + a.w / 2
  const cy = a.y + a.h / 2
  const dx = b.x + b.w / 2 - cx
  const dy = b.y + b.h / 2 - cy
  if (dx === 0 && dy === 0) return { x: cx, y: cy }
  const sx = dx === 0 ? Infinity : a.w / 2 / Math.abs(dx)
  const sy = dy === 0 ? Infinity : a.h / 2 / Math.abs(dy)
  const s = Math.min(sx, sy)
  return { x: cx + dx * s, y: cy + dy * s }
}

export class FitView {
  readonly toggle: HTMLButtonElement
  readonly el: HTMLElement
  /** The links as a list for the outline view (canvaspage appends it after the notes). */
  readonly outlineSection: HTMLElement
  private readonly outlineList: HTMLElement
  private cached: ReturnType<FitView['readState']> | null = null
  private readonly f: FitDoc
  private readonly overlay: SVGSVGElement
  private readonly lineLayer: SVGGElement
  private readonly dragLine: SVGLineElement
  private readonly handleLayer: HTMLElement
  private readonly handles = new Map<string, HTMLButtonElement>()
  private readonly live: HTMLElement
  private readonly mapEl: HTMLElement
  private readonly exchangeEl: HTMLElement
  private readonly linksEl: HTMLElement
  private readonly partnersEl: HTMLElement
  private readonly highlight = new Set<string>()
  private highlightRow: string | null = null
  private signature = ''
  private readonly frames: FrameScheduler
  /** Overlay redraws, for tests and the client benchmark: idle pans and zooms cost none. */
  readonly stats = { draws: 0 }
  private dragging = false
  private fetchSeq = 0
  private fetchTimer: ReturnType<typeof setTimeout> | null = null
  private readonly cleanups: Array<() => void> = []

  constructor(private readonly host: FitHost) {
    this.f = fitDoc(host.cdoc.doc)
    this.toggle = h('button', { type: 'button', class: 'btn', 'aria-pressed': 'false', 'aria-controls': 'fit-view' }, 'Fit & value exchange')
    this.mapEl = h('div', { class: 'contribution', id: 'contribution' })
    this.exchangeEl = h('div', { class: 'exchange', id: 'value-exchange' })
    this.linksEl = h('ul', { class: 'fit-links', id: 'fit-links' })
    this.partnersEl = h('section', { class: 'key-partners', 'aria-labelledby': 'key-partners-heading', hidden: true })
    this.live = h('div', { class: 'visually-hidden', 'aria-live': 'polite' })
    this.outlineList = h('ul', { class: 'outline-notes outline-links' })
    this.outlineSection = h('section', { class: 'outline-fit', 'aria-labelledby': 'outline-links-heading' }, h('h3', { id: 'outline-links-heading' }, 'Fit links'), this.outlineList)
    this.el = h(
      'section',
      { class: 'fit-view', id: 'fit-view', hidden: true, 'aria-labelledby': 'fit-heading' },
      h('h2', { id: 'fit-heading', tabindex: '-1' }, 'Fit across partners'),
      h(
        'div',
        { class: 'fit-grid' },
        h('section', { 'aria-labelledby': 'contribution-heading' }, h('h3', { id: 'contribution-heading' }, 'Contribution map'), this.mapEl),
        h('section', { 'aria-labelledby': 'exchange-heading' }, h('h3', { id: 'exchange-heading' }, 'Value exchange'), this.exchangeEl),
      ),
      this.partnersEl,
      h('section', { 'aria-labelledby': 'links-heading' }, h('h3', { id: 'links-heading' }, 'Links'), this.linksEl),
      this.live,
    )
    this.toggle.addEventListener('click', () => {
      const show = this.el.hidden
      this.el.hidden = !show
      this.toggle.setAttribute('aria-pressed', String(show))
      if (show) {
        this.renderPanels()
        this.el.querySelector<HTMLElement>('h2')?.focus()
      }
    })

    // The overlay lives in the board's world (canvas units; the board clips it), never in the
    // way of the pointer; the handles sit in a layer above it, sized against the zoom.
    this.overlay = svg('svg', { class: 'fit-overlay', 'aria-hidden': 'true', 'data-draws': 0 })
    const defs = svg('defs')
    const marker = svg('marker', { id: 'fit-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' })
    marker.append(svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: 'context-stroke' }))
    defs.append(marker)
    this.lineLayer = svg('g')
    this.dragLine = svg('line', { class: 'fit-drag', visibility: 'hidden' })
    this.overlay.append(defs, this.lineLayer, this.dragLine)
    this.handleLayer = h('div', { class: 'fit-handles' })
    host.board.addWorldLayer(this.overlay)
    host.board.addWorldLayer(this.handleLayer)
    this.frames = new FrameScheduler(() => this.draw())
    this.cleanups.push(() => this.frames.cancel())

    const onChange = (): void => {
      this.cached = null
      this.frames.request()
      // The outline's list of links is written only while the outline shows it.
      if (this.outlineSection.isConnected) this.renderOutlineLinks()
      if (!this.el.hidden) this.renderPanels()
    }
    const maps = [this.f.links, this.f.exchange, this.f.overlaps, host.cdoc.notes, host.cdoc.blocks, host.cdoc.orgs]
    for (const m of maps) m.observeDeep(onChange)
    // protect_notes and the workshop stage decide who may link from where (the handles).
    const onMeta = (): void => {
      this.frames.request()
      if (!this.el.hidden) this.renderPanels()
    }
    const stageMap = host.cdoc.doc.getMap('stage')
    host.cdoc.meta.observeDeep(onMeta)
    stageMap.observeDeep(onMeta)
    this.cleanups.push(() => {
      maps.forEach((m) => m.unobserveDeep(onChange))
      host.cdoc.meta.unobserveDeep(onMeta)
      stageMap.unobserveDeep(onMeta)
    })
    // A note moved or grew, or the canvas was laid out again: the ends may have moved.
    this.cleanups.push(host.board.onLayout(() => this.frames.request()))

    const onKey = (e: KeyboardEvent): void => {
      if (e.key.toLowerCase() !== 'l' || e.ctrlKey || e.metaKey || e.altKey) return
      const t = e.target
      if (!(t instanceof HTMLElement) || !t.matches('.note[data-note-id]')) return
      e.preventDefault()
      void this.linkFromKeyboard(t.dataset.noteId ?? '')
    }
    document.addEventListener('keydown', onKey)
    this.cleanups.push(() => document.removeEventListener('keydown', onKey))

    this.frames.request()
    this.renderOutlineLinks()
  }

  // --- what the doc says ----------------------------------------------------------------

  private state(): ReturnType<FitView['readState']> {
    // Read once per document change, not once per animation frame.
    this.cached ??= this.readState()
    return this.cached
  }

  private readState() {
    const notes = new Map(allNotes(this.host.cdoc).map((n) => [n.id, n]))
    const blocks = new Map(allBlocks(this.host.cdoc).map((b) => [b.id, b]))
    const links = liveLinks(readLinks(this.f), notes, blocks)
    return { notes, blocks, links, orgs: allOrgs(this.host.cdoc) }
  }

  private noteEl(id: string): HTMLElement | null {
    return this.host.board.noteView(id)?.el ?? null
  }

  // --- the overlay ------------------------------------------------------------------------

  /** Redraw (scheduled once a frame by the changes above); the board's boxes, no layout read. */
  private draw(): void {
    if (this.dragging) return // drawn again when the drag ends
    const { notes, blocks, links, orgs } = this.state()
    const protect = this.host.protectNotes()
    const from = this.host.frozen() ? [] : [...notes.values()].filter((n) => mayLinkFrom(this.host.me, n, blocks.get(n.block), protect))
    const ids = new Set<string>([...links.flatMap((l) => [l.from, l.to]), ...from.map((n) => n.id), ...this.highlight])
    const boxes = new Map<string, Box>()
    for (const id of ids) {
      const b = this.host.board.noteBox(id)
      if (b) boxes.set(id, b)
    }
    const geom = this.host.board.geometry
    const sig = JSON.stringify([[geom.width, geom.height], [...boxes], links, [...this.highlight], from.map((n) => n.id)])
    if (sig === this.signature) return
    this.signature = sig
    this.stats.draws++
    this.overlay.setAttribute('data-draws', String(this.stats.draws))
    this.overlay.setAttribute('width', String(Math.max(1, geom.width)))
    this.overlay.setAttribute('height', String(Math.max(1, geom.height)))

    const out: SVGElement[] = []
    for (const l of links) {
      const a = boxes.get(l.from)
      const b = boxes.get(l.to)
      if (!a || !b) continue
      const p = edgePoint(a, b)
      const q = edgePoint(b, a)
      const color = orgs.get(l.org)?.color ?? NEUTRAL_COLOR
      const line = svg('line', {
        class: 'fit-line',
        x1: p.x,
        y1: p.y,
        x2: q.x,
        y2: q.y,
        stroke: color,
        'stroke-width': l.strength === 'essential' ? 3 : 2,
        'marker-end': 'url(#fit-arrow)',
        'data-link-id': l.id,
        'data-from': l.from,
        'data-to': l.to,
        'data-strength': l.strength,
      })
      if (l.strength !== 'essential') line.setAttribute('stroke-dasharray', '6 4')
      const title = svg('title')
      title.textContent = this.linkLabel(l, notes)
      line.append(title)
      out.push(line)
    }
    for (const id of this.highlight) {
      const b = boxes.get(id)
      if (b) out.push(svg('rect', { class: 'fit-ring', x: b.x - 4, y: b.y - 4, width: b.w + 8, height: b.h + 8, rx: 8, 'data-note-id': id }))
    }
    this.lineLayer.replaceChildren(...out)
    this.placeHandles(from, boxes)
  }

  private placeHandles(from: NoteInfo[], boxes: Map<string, Box>): void {
    const keep = new Set<string>()
    for (const n of from) {
      const b = boxes.get(n.id)
      if (!b) continue
      keep.add(n.id)
      let btn = this.handles.get(n.id)
      if (!btn) {
        btn = this.makeHandle(n.id)
        this.handles.set(n.id, btn)
        this.handleLayer.append(btn)
      }
      // Canvas units; the CSS centres the handle on this point at a constant screen size.
      const left = `${b.x + b.w - 2}px`
      const top = `${b.y + b.h / 2}px`
      if (btn.style.left !== left) btn.style.left = left
      if (btn.style.top !== top) btn.style.top = top
    }
    for (const [id, btn] of this.handles) {
      if (keep.has(id)) continue
      btn.remove()
      this.handles.delete(id)
    }
  }

  private makeHandle(noteId: string): HTMLButtonElement {
    // Not a Tab stop (the board's own order stays as it is): "L" on the note is the keyboard way.
    const btn = h('button', {
      type: 'button',
      class: 'fit-handle',
      tabindex: '-1',
      'data-note-id': noteId,
      title: 'Drag onto what this note addresses to link them (or press L on the note)',
      'aria-label': 'Link this note',
    })
    btn.addEventListener('pointerdown', (e) => {
      e.preventDefault()
      btn.setPointerCapture(e.pointerId)
      const start = { x: e.clientX, y: e.clientY }
      const vp = this.host.board.viewport
      const from = vp.toCanvas(e.clientX, e.clientY)
      let moved = false
      this.dragging = true
      const move = (ev: PointerEvent): void => {
        if (Math.abs(ev.clientX - start.x) + Math.abs(ev.clientY - start.y) > 4) moved = true
        const to = vp.toCanvas(ev.clientX, ev.clientY)
        for (const [k, v] of Object.entries({ x1: from.x, y1: from.y, x2: to.x, y2: to.y })) this.dragLine.setAttribute(k, String(v))
        this.dragLine.setAttribute('visibility', moved ? 'visible' : 'hidden')
      }
      const up = (ev: PointerEvent): void => {
        btn.removeEventListener('pointermove', move)
        btn.removeEventListener('pointerup', up)
        btn.removeEventListener('pointercancel', up)
        this.dragging = false
        this.dragLine.setAttribute('visibility', 'hidden')
        this.frames.request()
        if (ev.type === 'pointercancel') return
        if (!moved) {
          void this.linkFromKeyboard(noteId)
          return
        }
        const target = document
          .elementsFromPoint(ev.clientX, ev.clientY)
          .map((el) => el.closest<HTMLElement>('.note[data-note-id]'))
          .find((el) => el && el.dataset.noteId !== noteId)
        if (target?.dataset.noteId) this.link(noteId, target.dataset.noteId, 'nice-to-have')
      }
      btn.addEventListener('pointermove', move)
      btn.addEventListener('pointerup', up)
      btn.addEventListener('pointercancel', up)
    })
    return btn
  }

  // --- making links -----------------------------------------------------------------------

  private link(fromId: string, toId: string, strength: Strength): void {
    if (this.host.frozen()) {
      this.host.refused('The facilitator froze the canvas: no new links until it is unfrozen.')
      return
    }
    const { notes, blocks, links } = this.state()
    const a = notes.get(fromId)
    const b = notes.get(toId)
    const kind = a && b ? linkKind(blocks.get(a.block)?.kind, blocks.get(b.block)?.kind) : null
    if (!a || !b || !kind) {
      this.host.refused('These notes cannot be linked: link an offer (product, pain reliever, gain creator) to the job, pain or gain it addresses.')
      return
    }
    if (links.some((l) => l.from === fromId && l.to === toId)) {
      this.host.refused('These notes are already linked.')
      return
    }
    addLink(this.f, fromId, toId, strength, this.host.me, kind, this.host.origin)
    setText(this.live, `Linked: ${excerpt(a.text, 40)} ${KIND_LABELS[kind] ?? kind} ${excerpt(b.text, 40)}`)
  }

  private async linkFromKeyboard(noteId: string): Promise<void> {
    const { notes, blocks, links } = this.state()
    const from = notes.get(noteId)
    const block = from ? blocks.get(from.block) : undefined
    if (this.host.frozen()) {
      this.host.refused('The facilitator froze the canvas: no new links until it is unfrozen.')
      return
    }
    if (!from || !mayLinkFrom(this.host.me, from, block, this.host.protectNotes())) {
      this.host.refused('You cannot link from this note: links start at your own products, pain relievers or gain creators.')
      return
    }
    const targets = [...notes.values()].filter(
      (n) => linkKind(block?.kind, blocks.get(n.block)?.kind) !== null && !links.some((l) => l.from === noteId && l.to === n.id),
    )
    if (targets.length === 0) {
      this.host.refused('Nothing on the canvas this note could address yet.')
      return
    }
    const to = await chooseDialog(
      `Link “${excerpt(from.text, 40)}” to…`,
      targets.map((n) => ({ value: n.id, label: `${blocks.get(n.block)?.title ?? n.block}: ${excerpt(n.text, 60) || '(empty note)'}` })),
    )
    if (!to) return
    const strength = await chooseDialog('How much does it matter to the customer?', [
      { value: 'essential', label: 'Essential' },
      { value: 'nice-to-have', label: 'Nice to have' },
    ])
    if (!strength) return
    this.link(noteId, to, strength === 'essential' ? 'essential' : 'nice-to-have')
    this.noteEl(noteId)?.focus()
  }

  private linkLabel(l: LinkInfo, notes: Map<string, NoteInfo>): string {
    const a = excerpt(notes.get(l.from)?.text ?? '', 40) || '(empty note)'
    const b = excerpt(notes.get(l.to)?.text ?? '', 40) || '(empty note)'
    return `${a} ${KIND_LABELS[l.kind] ?? l.kind} ${b} (${l.strength === 'essential' ? 'essential' : 'nice to have'})`
  }

  // --- the view ---------------------------------------------------------------------------

  private renderPanels(): void {
    this.renderLinks()
    this.renderKeyPartners()
    this.renderExchange()
    if (this.fetchTimer) clearTimeout(this.fetchTimer)
    this.fetchTimer = setTimeout(() => void this.refreshMap(), 150)
  }

  /** The outline's "Fit links" section, up to date (the page appends it when the outline opens). */
  outline(): HTMLElement {
    this.renderOutlineLinks()
    return this.outlineSection
  }

  private renderOutlineLinks(): void {
    const { notes, links, orgs } = this.state()
    this.outlineList.replaceChildren(
      ...(links.length
        ? links.map((l) => h('li', { 'data-link-id': l.id }, this.linkLabel(l, notes), ' — ', h('span', { class: 'outline-author' }, orgLabel(orgs, l.org).name)))
        : [h('li', { class: 'outline-empty' }, 'No links yet')]),
    )
  }

  private renderLinks(): void {
    const { notes, links, orgs } = this.state()
    const protect = this.host.protectNotes()
    if (links.length === 0) {
      this.linksEl.replaceChildren(h('li', { class: 'muted' }, 'No links yet: drag from the handle on an offer to the pain, gain or job it addresses, or press L on the note.'))
      return
    }
    this.linksEl.replaceChildren(
      ...links.map((l) => {
        const li = h('li', { 'data-link-id': l.id }, h('span', { class: 'org-tag', style: `--c:${orgs.get(l.org)?.color ?? NEUTRAL_COLOR}` }, orgLabel(orgs, l.org).name), ' ', this.linkLabel(l, notes))
        if (mayChangeLink(this.host.me, l, protect) && !this.host.frozen()) {
          const other: Strength = l.strength === 'essential' ? 'nice-to-have' : 'essential'
          const flip = h('button', { type: 'button', class: 'btn btn-small' }, other === 'essential' ? 'Make essential' : 'Make nice to have')
          flip.addEventListener('click', () => setStrength(this.f, l.id, other, this.host.origin))
          const del = h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Remove link: ${this.linkLabel(l, notes)}` }, 'Remove')
          del.addEventListener('click', () => removeEntry(this.f.links, l.id, this.host.origin))
          li.append(' ', flip, ' ', del)
        }
        return li
      }),
    )
  }

  /** Business Model Canvas: a Key Partners note may name one of the canvas's organizations. */
  private renderKeyPartners(): void {
    const { notes, blocks, orgs } = this.state()
    const keyPartners = [...notes.values()].filter((n) => blocks.get(n.block)?.kind === 'key-partners')
    this.partnersEl.hidden = keyPartners.length === 0
    if (!keyPartners.length) return
    const protect = this.host.protectNotes()
    const entry = (id: string): Y.Map<unknown> | null => {
      const v = this.host.cdoc.notes.get(id)
      return v instanceof Y.Map ? (v as Y.Map<unknown>) : null
    }
    const named = (id: string): string => {
      const v = entry(id)?.get('partner_org')
      return typeof v === 'string' ? v : ''
    }
    const rows = keyPartners.map((n) => {
      const select = h('select', { 'aria-label': `Organization of the key partner “${excerpt(n.text, 40)}”`, 'data-note-id': n.id })
      for (const [id, o] of [['', { name: 'not on this canvas' }] as const, ...orgs]) {
        const opt = h('option', { value: id }, o.name)
        opt.selected = named(n.id) === id
        select.append(opt)
      }
      select.disabled = this.host.frozen() || !mayEditNote(this.host.me, n, blocks.get(n.block), protect)
      select.addEventListener('change', () => {
        this.host.cdoc.doc.transact(() => entry(n.id)?.set('partner_org', select.value), this.host.origin)
      })
      return h('li', {}, excerpt(n.text, 60) || '(empty note)', ' — ', select)
    })
    this.partnersEl.replaceChildren(h('h3', { id: 'key-partners-heading' }, 'Key partners on this canvas'), h('ul', {}, ...rows))
  }

  private async refreshMap(): Promise<void> {
    const seq = ++this.fetchSeq
    try {
      const map = await fetchContribution(this.host.canvasId, this.host.token)
      if (seq === this.fetchSeq) this.renderMap(map)
    } catch (err) {
      if (seq === this.fetchSeq) this.mapEl.replaceChildren(h('p', { role: 'alert' }, `The contribution map could not be loaded (${String(err)}).`))
    }
  }

  private renderMap(map: ContributionMap): void {
    const texts = new Map(map.rows.map((r) => [r.note, r.text]))
    const facilitator = this.host.me.role === 'facilitator' && !this.host.frozen()
    const head = h('tr', {}, h('th', { scope: 'col' }, 'Customer'), ...map.organizations.map((o) => h('th', { scope: 'col', style: `--c:${o.color || NEUTRAL_COLOR}` }, o.name)), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'On the board')))
    const body = map.rows.map((r) => {
      const status =
        r.status === 'gap'
          ? h('span', { class: 'tag tag-gap' }, 'gap')
          : r.status === 'overlap'
            ? h('span', { class: 'tag tag-overlap' }, r.overlap ? `overlap: ${r.overlap}` : 'overlap')
            : null
      const rowHead = h('th', { scope: 'row' }, h('span', { class: 'row-kind' }, ROW_LABELS[r.kind] ?? r.kind), ' ', r.text || '(empty note)', ' ', status)
      if (facilitator && r.status === 'overlap') {
        const select = h('select', { 'aria-label': `Mark the overlap on “${excerpt(r.text, 40)}”`, class: 'overlap-mark' })
        for (const v of ['', ...OVERLAP_MARKS]) {
          const opt = h('option', { value: v }, v || 'unmarked')
          opt.selected = (r.overlap ?? '') === v
          select.append(opt)
        }
        select.addEventListener('change', () => setOverlap(this.f, r.note, select.value, this.host.origin))
        rowHead.append(' ', select)
      }
      const cells = map.organizations.map((o) =>
        h(
          'td',
          { 'data-org': o.id },
          ...(r.cells[o.id] ?? []).map((c) => h('div', { class: `cell-note ${c.strength}`, 'data-note-id': c.note }, c.strength === 'essential' ? '★ ' : '', c.text || '(empty note)')),
        ),
      )
      const show = h('button', { type: 'button', class: 'btn btn-small', 'aria-pressed': String(this.highlightRow === r.note) }, 'Show on board')
      show.addEventListener('click', () => this.toggleHighlight(r.note, Object.values(r.cells).flat().map((c) => c.note)))
      return h('tr', { 'data-row': r.note, 'data-status': r.status }, rowHead, ...cells, h('td', {}, show))
    })
    const table = h('table', { class: 'contribution-map' }, h('thead', {}, head), h('tbody', {}, ...body))
    const coverage = h('ul', { class: 'fit-coverage' }, ...map.coverage.map((c) => h('li', { 'data-kind': c.kind }, c.sentence)))
    const gaps = map.gaps.length
      ? h('p', { class: 'fit-gaps' }, h('strong', {}, 'Gaps (most voted first): '), map.gaps.map((g) => texts.get(g) || '(empty note)').join(' · '))
      : h('p', { class: 'fit-gaps' }, 'No gaps: every row is addressed.')
    const partners = h('ul', { class: 'fit-partners' }, ...map.partners.map((p) => h('li', { 'data-org': p.org }, p.sentence)))
    this.mapEl.replaceChildren(
      map.rows.length ? table : h('p', { class: 'muted' }, 'Add the customer’s jobs, pains and gains to see who addresses them.'),
      coverage,
      gaps,
      h('h4', {}, 'Each partner’s contribution'),
      partners,
    )
  }

  private toggleHighlight(row: string, notes: string[]): void {
    this.highlight.clear()
    if (this.highlightRow === row) {
      this.highlightRow = null
    } else {
      this.highlightRow = row
      for (const n of [row, ...notes]) this.highlight.add(n)
      this.host.board.revealNote(row)
    }
    this.frames.request()
    for (const btn of this.mapEl.querySelectorAll<HTMLButtonElement>('tr[data-row] button')) {
      btn.setAttribute('aria-pressed', String(btn.closest('tr')?.dataset.row === this.highlightRow))
    }
  }

  private renderExchange(): void {
    const orgs = allOrgs(this.host.cdoc)
    const arrows = readArrows(this.f).filter((a) => orgs.has(a.fromOrg) && (a.to === CUSTOMER || orgs.has(a.to)) && a.to !== a.fromOrg)
    const ids = [...orgs.keys()].sort((a, b) => (orgs.get(a)?.name ?? a).localeCompare(orgs.get(b)?.name ?? b))
    const W = 420
    const H = 320
    const pos = new Map<string, { x: number; y: number }>()
    pos.set(CUSTOMER, { x: W / 2, y: H / 2 })
    ids.forEach((id, i) => {
      const t = (2 * Math.PI * i) / Math.max(1, ids.length) - Math.PI / 2
      pos.set(id, { x: W / 2 + Math.cos(t) * 125, y: H / 2 + Math.sin(t) * 115 })
    })
    const net = svg('svg', { class: 'exchange-net', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'exchange-heading' })
    const defs = svg('defs')
    const marker = svg('marker', { id: 'exchange-arrowhead', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' })
    marker.append(svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: 'context-stroke' }))
    defs.append(marker)
    net.append(defs)
    const R = 30
    arrows.forEach((a) => {
      const p = pos.get(a.fromOrg)
      const q = pos.get(a.to)
      if (!p || !q) return
      const dx = q.x - p.x
      const dy = q.y - p.y
      const len = Math.hypot(dx, dy) || 1
      const same = arrows.filter((o) => o.fromOrg === a.fromOrg && o.to === a.to)
      const k = same.indexOf(a)
      const bend = 18 + 16 * k // a fan for several arrows between the same two, away from the reverse ones
      const mx = (p.x + q.x) / 2 - (dy / len) * bend
      const my = (p.y + q.y) / 2 + (dx / len) * bend
      const sx = p.x + ((mx - p.x) / Math.hypot(mx - p.x, my - p.y)) * R
      const sy = p.y + ((my - p.y) / Math.hypot(mx - p.x, my - p.y)) * R
      const ex = q.x + ((mx - q.x) / Math.hypot(mx - q.x, my - q.y)) * (R + 2)
      const ey = q.y + ((my - q.y) / Math.hypot(mx - q.x, my - q.y)) * (R + 2)
      const color = orgs.get(a.fromOrg)?.color ?? NEUTRAL_COLOR
      const g = svg('g', { class: 'exchange-arrow', 'data-arrow-id': a.id, 'data-from': a.fromOrg, 'data-to': a.to, 'data-kind': a.kind })
      const path = svg('path', { d: `M${sx},${sy} Q${mx},${my} ${ex},${ey}`, fill: 'none', stroke: color, 'stroke-width': 2, 'marker-end': 'url(#exchange-arrowhead)' })
      const label = svg('text', { x: (sx + 2 * mx + ex) / 4, y: (sy + 2 * my + ey) / 4, 'text-anchor': 'middle', class: 'exchange-label' })
      label.textContent = a.kind
      const title = svg('title')
      title.textContent = this.arrowLabel(a, orgs)
      g.append(title, path, label)
      net.append(g)
    })
    for (const [id, p] of pos) {
      const g = svg('g', { class: 'exchange-node', 'data-node': id })
      const org = orgs.get(id)
      g.append(svg('circle', { cx: p.x, cy: p.y, r: R, fill: id === CUSTOMER ? '#fff8e1' : '#fff', stroke: org?.color ?? '#8a6d00', 'stroke-width': 2 }))
      const t = svg('text', { x: p.x, y: p.y + 4, 'text-anchor': 'middle', class: 'exchange-name' })
      t.textContent = id === CUSTOMER ? 'Customer' : excerpt(org?.name ?? id, 14)
      g.append(t)
      net.append(g)
    }
    const list = h(
      'ul',
      { class: 'exchange-list' },
      ...arrows.map((a) => {
        const li = h('li', { 'data-arrow-id': a.id }, this.arrowLabel(a, orgs))
        if (mayChangeArrow(this.host.me, a) && !this.host.frozen()) {
          const del = h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Remove arrow: ${this.arrowLabel(a, orgs)}` }, 'Remove')
          del.addEventListener('click', () => removeEntry(this.f.exchange, a.id, this.host.origin))
          li.append(' ', del)
        }
        return li
      }),
    )
    const form = this.arrowForm(ids)
    this.exchangeEl.replaceChildren(net, arrows.length ? list : h('p', { class: 'muted' }, 'No arrows yet: say what flows between the partners and to the customer.'), ...(form ? [form] : []))
  }

  private arrowLabel(a: ArrowInfo, orgs: ReturnType<typeof allOrgs>): string {
    const to = a.to === CUSTOMER ? 'the customer' : orgLabel(orgs, a.to).name
    return `${orgLabel(orgs, a.fromOrg).name} → ${to}: ${a.kind}${a.note ? ` — ${a.note}` : ''}`
  }

  private arrowForm(ids: string[]): HTMLElement | null {
    const me = this.host.me
    if (this.host.frozen() || me.role === 'viewer' || (me.role === 'editor' && !ids.includes(me.org))) return null
    const orgs = allOrgs(this.host.cdoc)
    const fromSel = h('select', { id: 'arrow-from' }, ...ids.map((id) => h('option', { value: id }, orgLabel(orgs, id).name)))
    if (me.role !== 'facilitator') {
      fromSel.value = me.org
      fromSel.disabled = true
    }
    const toSel = h('select', { id: 'arrow-to' })
    const fillTo = (): void => {
      toSel.replaceChildren(h('option', { value: CUSTOMER }, 'the customer'), ...ids.filter((id) => id !== fromSel.value).map((id) => h('option', { value: id }, orgLabel(orgs, id).name)))
    }
    fillTo()
    fromSel.addEventListener('change', fillTo)
    const kindSel = h('select', { id: 'arrow-kind' }, ...EXCHANGE_KINDS.map((k) => h('option', { value: k }, k)))
    const noteIn = h('input', { id: 'arrow-note', type: 'text', maxlength: '500', placeholder: 'who gets paid, what is shared…' })
    const add = h('button', { type: 'submit', class: 'btn' }, 'Add arrow')
    const form = h(
      'form',
      { class: 'arrow-form', 'aria-label': 'Add a value exchange arrow' },
      h('label', { for: 'arrow-from' }, 'From '),
      fromSel,
      h('label', { for: 'arrow-to' }, ' to '),
      toSel,
      h('label', { for: 'arrow-kind' }, ' what '),
      kindSel,
      h('label', { for: 'arrow-note' }, ' note '),
      noteIn,
      ' ',
      add,
    )
    form.addEventListener('submit', (e) => {
      e.preventDefault()
      addArrow(this.f, fromSel.value, toSel.value, kindSel.value, noteIn.value.trim(), this.host.origin)
      setText(this.live, `Arrow added: ${kindSel.value} to ${toSel.selectedOptions[0]?.textContent ?? toSel.value}`)
    })
    return form
  }

  destroy(): void {
    for (const c of this.cleanups) c()
    if (this.fetchTimer) clearTimeout(this.fetchTimer)
    this.overlay.remove()
    this.handleLayer.remove()
  }
}

