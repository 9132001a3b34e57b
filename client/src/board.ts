// The canvas board: a zoomable, pannable world (viewport.ts) in canvas units, with panels
// and blocks placed by geometry.ts and the notes of each block packed without overlap by
// packing.ts. Work is incremental: the page tells the board which notes changed, and one
// flush per animation frame updates only those notes and re-packs only their blocks.
// Notes are kept by id, so a note moving between blocks keeps its element, binding and focus.
import * as Y from 'yjs'
import { blockLabel } from './a11y'
import { textColorOn } from './colors'
import { h, setAttr, setText } from './dom'
import { FrameScheduler } from './frame'
import {
  NOTE_MAX_H,
  NOTE_MIN_H,
  NOTE_W,
  blockAt as geomBlockAt,
  computeGeometry,
  unionRect,
  type BlockGeom,
  type Geometry,
  type Rect,
} from './geometry'
import { lockIcon } from './icons'
import { buildLayout, layoutSignature, readingOrder, type Panel } from './layout'
import { allBlocks, allOrgs, clamp01, orgLabel, readNote, type BlockInfo, type CanvasDoc, type NoteInfo, type OrgView } from './model'
import { NoteView, type NoteCallbacks } from './noteview'
import { Overview } from './overview'
import { nextSlot, packNotes, type Packed } from './packing'
import type { Cursor, Peer, PresenceUser } from './presence'
import { personLabel } from './presence'
import { Viewport, type ViewListener } from './viewport'

export interface BoardHost {
  cdoc: CanvasDoc
  origin: unknown
  /** May this person write at all (role), and is this note/block open to them? */
  canEditNote(note: NoteInfo, block: BlockInfo | undefined): boolean
  canAddTo(block: BlockInfo): boolean
  isFacilitator(): boolean
  addNote(blockId: string, at?: { x: number; y: number }): void
  moveNote(noteId: string, blockId: string, at: { x: number; y: number } | null): void
  requestDelete(noteId: string): void
  requestMove(noteId: string): void
  toggleLock(blockId: string): void
  setEditing(noteId: string | null): void
  setCursor(cursor: Cursor | null): void
  refused(message: string): void
  /** A click on a note this person may not change: say whose it is and why. */
  explainReadOnly(note: NoteInfo, block: BlockInfo | undefined, anchor: HTMLElement): void
}

interface BlockView {
  info: BlockInfo
  section: HTMLElement
  title: HTMLElement
  lockBadge: HTMLElement
  addBtn: HTMLButtonElement
  lockBtn: HTMLButtonElement | null
  area: HTMLElement
}

interface PanelView {
  el: HTMLElement
  shape: HTMLElement
}

/** Phone widths show one block at a time. */
const SINGLE_BLOCK_MAX_W = 640
/** Line box of note text in canvas px: heights are whole lines, so clients agree. */
const NOTE_LINE = 16
const NOTE_CHROME_H = 30

export class Board {
  readonly el: HTMLElement
  readonly viewport: Viewport
  private readonly world: HTMLElement
  private readonly cursorLayer: HTMLElement
  private readonly measurer: HTMLElement
  /** One text node, rewritten in place: measuring a note costs one character-data change. */
  private readonly measureText = document.createTextNode('')
  private readonly nav: HTMLElement
  private readonly navSelect: HTMLSelectElement
  private readonly overview: Overview
  private blocks = new Map<string, BlockView>()
  private panelViews = new Map<string, PanelView>()
  private notes = new Map<string, NoteView>()
  /** Which notes each block holds (after the fallback for unknown blocks). */
  private members = new Map<string, Set<string>>()
  private heights = new Map<string, { h: number; full: number; text: string }>()
  private packs = new Map<string, Packed>()
  private panels: Panel[] = []
  private geom: Geometry = { width: 0, height: 0, panels: [], blocks: new Map() }
  private order: BlockInfo[] = []
  private signature = ''
  private editors = new Map<string, PresenceUser[]>()
  private editorSig = new Map<string, string>()
  private peers: readonly Peer[] = []
  private orgs = new Map<string, OrgView>()
  private readonly dirty = new Set<string>()
  private readonly frames: FrameScheduler
  private fitted = false
  private userMoved = false
  private current = ''
  /** Counters for the client benchmark and tests: how much work remote edits cause. */
  readonly stats = { flushes: 0, notesUpdated: 0, blocksRepacked: 0 }
  /** Layers other features draw in canvas coordinates (fit links): kept across rebuilds. */
  private readonly layers: Element[] = []
  private readonly layoutListeners = new Set<() => void>()

  constructor(private readonly host: BoardHost) {
    this.world = h('div', { class: 'board-world' })
    this.cursorLayer = h('div', { class: 'cursor-layer', 'aria-hidden': 'true' })
    this.measurer = h('div', { class: 'note-measure', 'aria-hidden': 'true' }, this.measureText)
    // One shared description each, so every note and block tells how to operate it.
    const help = h(
      'div',
      { hidden: true },
      h('span', { id: 'note-keys-help' }, 'Enter to edit, Escape to stop editing, M to move to another block, Alt+arrow keys to move to the next or previous block, Delete to delete.'),
      h('span', { id: 'block-keys-help' }, 'N to add a note, Enter to go to its first note, Z to zoom to it, arrow keys for the next or previous block.'),
    )
    this.navSelect = h('select', { class: 'block-nav-select', 'aria-label': 'Block shown' })
    const prev = h('button', { type: 'button', class: 'btn btn-small', 'aria-label': 'Previous block' }, '‹')
    const next = h('button', { type: 'button', class: 'btn btn-small', 'aria-label': 'Next block' }, '›')
    prev.addEventListener('click', () => this.stepBlock(-1))
    next.addEventListener('click', () => this.stepBlock(1))
    this.navSelect.addEventListener('change', () => this.showBlock(this.navSelect.value))
    this.nav = h('nav', { class: 'block-nav', 'aria-label': 'Blocks' }, prev, this.navSelect, next)
    this.el = h('div', { class: 'board', id: 'board' }, help, this.world, this.cursorLayer, this.measurer)
    this.viewport = new Viewport(this.el, this.world, (t) => !!t.closest('.note, button, textarea, input, select, a, .block-nav, .overview'))
    this.overview = new Overview(this.viewport)
    this.el.append(this.overview.el)
    this.frames = new FrameScheduler(() => this.flush())
    this.viewport.onChange((_v, reason) => {
      if (reason === 'user') this.userMoved = true
      this.frames.cursors(() => this.renderView())
    })
    this.el.addEventListener('keydown', (e) => this.onKeyDown(e))
    this.el.addEventListener('pointermove', (e) => this.onPointerMove(e))
    this.el.addEventListener('pointerleave', () => this.host.setCursor(null))
    this.el.addEventListener('dblclick', (e) => this.onDoubleClick(e))
    this.el.addEventListener('focusin', (e) => this.onFocusIn(e))
  }

  /** The phone's block picker (placed by the page above the board). */
  get navEl(): HTMLElement {
    return this.nav
  }

  get blockOrder(): readonly BlockInfo[] {
    return this.order
  }

  get geometry(): Geometry {
    return this.geom
  }

  blockInfo(id: string): BlockInfo | undefined {
    return this.blocks.get(id)?.info
  }

  noteView(id: string): NoteView | undefined {
    return this.notes.get(id)
  }

  /** Where other features hang badges and counts on a note (votes, comments). */
  noteDecorations(id: string): HTMLElement | undefined {
    return this.notes.get(id)?.decor
  }

  onViewChange(fn: ViewListener): () => void {
    return this.viewport.onChange(fn)
  }

  /**
   * Notes were placed, resized or the canvas laid out again. Not called for pan or zoom:
   * anything drawn in a world layer moves with the world's transform for free.
   */
  onLayout(fn: () => void): () => void {
    this.layoutListeners.add(fn)
    return () => this.layoutListeners.delete(fn)
  }

  private laidOut(): void {
    for (const fn of this.layoutListeners) fn()
  }

  /** Put a layer inside the board's world, above the notes, drawn in canvas coordinates. */
  addWorldLayer(el: Element): void {
    this.layers.push(el)
    this.world.append(el)
  }

  /** A note's box as shown (not focused), in canvas coordinates: no layout is read. */
  noteBox(id: string): Rect | undefined {
    const r = this.noteRect(id)
    return r ? { ...r, h: this.heightOf(id) } : undefined
  }

  /** Bring a note into view (the board's own pan, never the browser's scrollIntoView). */
  revealNote(id: string): void {
    const r = this.noteRect(id)
    if (r) this.viewport.ensureVisible(r)
  }

  /** Structure changed (blocks, orgs, meta) or first render: rebuild if needed, then every note. */
  render(): void {
    const cdoc = this.host.cdoc
    const blocks = allBlocks(cdoc)
    this.orgs = allOrgs(cdoc)
    const sig = layoutSignature(blocks, this.orgs)
    if (sig !== this.signature) {
      this.signature = sig
      this.rebuild(buildLayout(blocks, this.orgs))
    }
    for (const b of blocks) {
      const view = this.blocks.get(b.id)
      if (view) this.updateBlock(view, b)
    }
    cdoc.notes.forEach((_v, k) => this.dirty.add(k))
    for (const id of this.notes.keys()) this.dirty.add(id)
    this.flush()
  }

  /** These notes changed: local edits render at once (the caller may focus them), remote ones next frame. */
  notesChanged(ids: Iterable<string>, now: boolean): void {
    for (const id of ids) this.dirty.add(id)
    if (now) this.flush()
    else this.frames.request()
  }

  private rebuild(panels: Panel[]): void {
    const active = document.activeElement
    const focusNote = active instanceof HTMLElement ? active.closest<HTMLElement>('.note')?.dataset.noteId : undefined
    const focusBlock = active instanceof HTMLElement && active.classList.contains('block') ? active.dataset.blockId : undefined
    this.blocks.clear()
    this.panelViews.clear()
    this.members.clear()
    this.packs.clear()
    this.panels = panels
    this.order = readingOrder(panels)
    this.el.dataset.template = String(this.host.cdoc.meta.get('template') ?? '')
    const nodes = panels.map((p) => this.renderPanel(p))
    this.world.replaceChildren(...nodes, ...this.layers)
    for (const view of this.notes.values()) view.el.remove()
    this.navSelect.replaceChildren(...this.order.map((b) => h('option', { value: b.id }, b.title)))
    if (!this.blocks.has(this.current)) this.current = this.order[0]?.id ?? ''
    this.navSelect.value = this.current
    this.layout()
    if (focusNote) queueMicrotask(() => this.focusNote(focusNote))
    else if (focusBlock) queueMicrotask(() => this.focusBlock(focusBlock))
  }

  private renderPanel(panel: Panel): HTMLElement {
    const order = readingOrder([panel])
    const shapeClass = panel.type === 'customer-profile' ? 'shape shape-circle' : panel.type === 'other' ? 'shape shape-other' : panel.type === 'bmc' ? 'shape shape-bmc' : 'shape shape-square'
    const shape = h('div', { class: shapeClass })
    for (const b of order) {
      const view = this.createBlock(b)
      this.blocks.set(b.id, view)
      shape.append(view.section)
    }
    const attrs = { class: `panel panel-${panel.type}`, 'data-panel': panel.key }
    let el: HTMLElement
    if (panel.type === 'bmc') el = h('div', attrs, shape)
    else {
      const heading = h('h2', { class: 'panel-title' }, panel.title)
      if (panel.type === 'value-map' && panel.org) {
        const org = orgLabel(this.orgs, panel.org)
        heading.prepend(h('span', { class: 'org-chip', style: `--org:${org.color};--org-text:${textColorOn(org.color)}` }, org.initials), ' ')
        el = h('div', { ...attrs, 'data-org': panel.org, style: `--org:${org.color};--org-tint:${org.color}1f` }, heading, shape)
      } else el = h('div', attrs, heading, shape)
    }
    this.panelViews.set(panel.key, { el, shape })
    return el
  }

  private createBlock(b: BlockInfo): BlockView {
    // Inside a partner's value map the panel heading already names the partner.
    const orgName = b.org ? this.orgs.get(b.org)?.name : undefined
    const shown = orgName && b.title.endsWith(` — ${orgName}`) ? b.title.slice(0, -(orgName.length + 3)) : b.title
    const title = h('h3', { class: 'block-title', title: b.title }, shown)
    const lockBadge = h('span', { class: 'lock-badge', hidden: true }, lockIcon(true), ' locked')
    const addBtn = h('button', { type: 'button', class: 'btn btn-small btn-icon add-note', title: `Add a note (N)` }, '+')
    addBtn.setAttribute('aria-label', `Add note to ${b.title}`)
    addBtn.addEventListener('click', () => this.host.addNote(b.id))
    let lockBtn: HTMLButtonElement | null = null
    if (this.host.isFacilitator()) {
      lockBtn = h('button', { type: 'button', class: 'btn btn-small btn-icon lock-toggle' }, lockIcon(false))
      lockBtn.addEventListener('click', () => this.host.toggleLock(b.id))
    }
    const area = h('div', { class: 'notes-area', 'data-block-id': b.id })
    const section = h(
      'section',
      { class: `block kind-${b.kind}`, tabindex: 0, 'data-block-id': b.id, 'data-kind': b.kind, 'aria-describedby': 'block-keys-help' },
      h('header', { class: 'block-head' }, title, lockBadge, h('span', { class: 'spacer' }), lockBtn, addBtn),
      b.hint ? h('p', { class: 'block-hint', title: b.hint }, b.hint) : null,
      area,
    )
    return { info: b, section, title, lockBadge, addBtn, lockBtn, area }
  }

  private updateBlock(view: BlockView, b: BlockInfo): void {
    const lockChanged = view.info.lockedBy !== b.lockedBy
    view.info = b
    const locked = b.lockedBy !== ''
    view.lockBadge.hidden = !locked
    view.section.classList.toggle('locked', locked)
    view.addBtn.hidden = !this.host.canAddTo(b)
    if (view.lockBtn) {
      if (view.lockBtn.dataset.locked !== String(locked)) {
        view.lockBtn.dataset.locked = String(locked)
        view.lockBtn.replaceChildren(lockIcon(locked))
      }
      setAttr(view.lockBtn, 'title', locked ? 'Unlock this block' : 'Lock this block')
      setAttr(view.lockBtn, 'aria-pressed', String(locked))
      setAttr(view.lockBtn, 'aria-label', `${locked ? 'Unlock' : 'Lock'} ${b.title}`)
    }
    setAttr(view.section, 'aria-label', blockLabel(b, this.members.get(b.id)?.size ?? 0))
    // A lock changes who may edit the block's notes.
    if (lockChanged) for (const id of this.members.get(b.id) ?? []) this.dirty.add(id)
  }

  /** Notes whose block is unknown (another tool, a deleted partner) still need a home. */
  private homeOf(note: NoteInfo): string | undefined {
    if (this.blocks.has(note.block)) return note.block
    return this.order[0]?.id
  }

  /** One frame's work: the changed notes, their blocks re-packed, geometry if a block grew. */
  private flush(): void {
    this.frames.cancel()
    if (!this.dirty.size) return
    this.stats.flushes++
    const cdoc = this.host.cdoc
    const touched = new Set<string>()
    const ids = [...this.dirty]
    this.dirty.clear()
    for (const id of ids) {
      const raw = cdoc.notes.get(id)
      const n = raw === undefined ? null : readNote(id, raw)
      const view = this.notes.get(id)
      if (!n) {
        if (view) this.removeNote(id, view, touched)
        continue
      }
      this.stats.notesUpdated++
      this.upsertNote(n, raw, view, touched)
    }
    this.relayout(touched)
  }

  private upsertNote(n: NoteInfo, raw: unknown, existing: NoteView | undefined, touched: Set<string>): void {
    let view = existing
    if (!view) {
      view = new NoteView(n, this.host.origin, this.noteCallbacks)
      this.attachDrag(view)
      this.notes.set(n.id, view)
    }
    const before = view.home
    view.syncText(raw instanceof Y.Map ? raw.get('text') : undefined)
    const home = this.homeOf(n)
    const block = home ? this.blocks.get(home) : undefined
    view.update(n, orgLabel(this.orgs, n.org), block?.info.title ?? 'no block', this.host.canEditNote(n, block?.info), this.editors.get(n.id) ?? [])
    this.measure(n.id, n.text)
    if (before !== home) {
      if (before) {
        this.members.get(before)?.delete(n.id)
        touched.add(before)
      }
      view.home = home
    }
    if (home && block) {
      let set = this.members.get(home)
      if (!set) {
        set = new Set()
        this.members.set(home, set)
      }
      set.add(n.id)
      let moved = false
      if (view.el.parentElement !== block.area) {
        const hadFocus = view.el.contains(document.activeElement)
        block.area.append(view.el)
        if (hadFocus) view.el.focus({ preventScroll: true })
        moved = true
      }
      // Typing that keeps the note's height leaves its block's packing alone.
      const key = `${n.x}\u0001${n.y}\u0001${n.createdAt}\u0001${this.heightOf(n.id)}`
      if (moved || before !== home || view.layoutKey !== key || !this.packs.get(home)?.pos.has(n.id)) touched.add(home)
      view.layoutKey = key
    }
  }

  private removeNote(id: string, view: NoteView, touched: Set<string>): void {
    const hadFocus = view.el.contains(document.activeElement)
    const home = view.home
    view.destroy()
    this.notes.delete(id)
    this.heights.delete(id)
    this.editorSig.delete(id)
    if (home) {
      this.members.get(home)?.delete(id)
      touched.add(home)
      if (hadFocus) this.focusBlock(home)
    }
  }

  /** Box height from the text, in whole lines: grows up to NOTE_MAX_H, all of it when focused. */
  private measure(id: string, text: string): void {
    const known = this.heights.get(id)
    if (known && known.text === text) return
    let lines = 1
    if (text) {
      this.measureText.data = text.endsWith('\n') ? text + ' ' : text
      lines = Math.max(1, Math.ceil((this.measurer.scrollHeight - 0.5) / NOTE_LINE))
    }
    const full = Math.max(NOTE_MIN_H, NOTE_CHROME_H + lines * NOTE_LINE)
    this.heights.set(id, { h: Math.min(NOTE_MAX_H, full), full, text })
  }

  private heightOf(id: string): number {
    return this.heights.get(id)?.h ?? NOTE_MIN_H
  }

  private pack(blockId: string): Packed {
    const g = this.geom.blocks.get(blockId)
    const items = [...(this.members.get(blockId) ?? [])].flatMap((id) => {
      const v = this.notes.get(id)
      return v ? [{ id, x: v.note.x, y: v.note.y, h: this.heightOf(id), createdAt: v.note.createdAt }] : []
    })
    this.stats.blocksRepacked++
    return packNotes(items, g?.area.w ?? NOTE_W, g?.baseH ?? NOTE_MIN_H)
  }

  /** Re-pack the touched blocks; if one now needs a different height, lay the canvas out again. */
  private relayout(touched: Set<string>): void {
    let grew = false
    for (const id of touched) {
      if (!this.blocks.has(id)) continue
      const prev = this.packs.get(id)
      const next = this.pack(id)
      this.packs.set(id, next)
      if (!prev || prev.height !== next.height) grew = true
    }
    if (grew) this.layout()
    for (const id of touched) this.placeNotes(id)
    for (const id of touched) {
      const view = this.blocks.get(id)
      if (view) setAttr(view.section, 'aria-label', blockLabel(view.info, this.members.get(id)?.size ?? 0))
    }
    if (touched.size && !grew) this.laidOut()
  }

  /** Geometry from the panels and the packed heights; only rectangles that moved are written. */
  private layout(): void {
    const needs = new Map<string, number>()
    for (const [id, p] of this.packs) if (p.pos.size) needs.set(id, p.height)
    const hints = new Map([...this.blocks].map(([id, v]) => [id, v.info.hint !== '']))
    const prev = this.geom
    this.geom = computeGeometry(this.panels, needs, hints)
    const shapeOrigin = new Map<string, Rect>()
    for (const p of this.geom.panels) {
      const v = this.panelViews.get(p.key)
      shapeOrigin.set(p.key, p.shape)
      if (!v) continue
      place(v.el, p.rect)
      place(v.shape, { ...p.shape, x: p.shape.x - p.rect.x, y: p.shape.y - p.rect.y })
    }
    for (const [id, g] of this.geom.blocks) {
      const v = this.blocks.get(id)
      const s = shapeOrigin.get(g.panel)
      if (!v || !s) continue
      const old = prev.blocks.get(id)
      if (old && sameRect(old.rect, g.rect) && sameRect(old.area, g.area)) continue
      place(v.section, { ...g.rect, x: g.rect.x - s.x, y: g.rect.y - s.y })
      place(v.area, { ...g.area, x: g.area.x - g.rect.x, y: g.area.y - g.rect.y })
    }
    // Blocks whose width changed (first layout) need packing with the real width.
    for (const [id, g] of this.geom.blocks) {
      const old = prev.blocks.get(id)
      if (!old || old.area.w !== g.area.w) {
        if (this.members.get(id)?.size) this.packs.set(id, this.pack(id))
      }
    }
    const content = unionRect(this.geom.panels.map((p) => p.rect)) ?? { x: 0, y: 0, w: 1, h: 1 }
    this.viewport.setContent(content)
    this.overview.setGeometry(this.geom, content)
    this.world.style.width = `${this.geom.width}px`
    this.world.style.height = `${this.geom.height}px`
    if (!this.fitted && this.geom.blocks.size) {
      this.fitted = true
      queueMicrotask(() => this.initialView())
    }
    this.frames.cursors(() => this.renderView())
    this.laidOut()
  }

  /** Once a frame after the view or the layout changed: cursors and the overview. */
  private renderView(): void {
    this.renderCursors()
    this.overview.update(this.singleBlockMode)
  }

  private placeNotes(blockId: string): void {
    const packed = this.packs.get(blockId)
    if (!packed) return
    for (const [id, p] of packed.pos) {
      const v = this.notes.get(id)
      const hh = this.heights.get(id)
      if (v) v.place(p.left, p.top, hh?.h ?? NOTE_MIN_H, hh?.full ?? NOTE_MIN_H)
    }
  }

  private readonly noteCallbacks: NoteCallbacks = {
    beginEdit: (id) => {
      const view = this.notes.get(id)
      if (!view || !this.host.canEditNote(view.note, this.blocks.get(view.note.block)?.info)) return null
      const note = this.host.cdoc.notes.get(id)
      if (!(note instanceof Y.Map)) return null
      let text = note.get('text')
      if (!(text instanceof Y.Text)) {
        text = new Y.Text(typeof text === 'string' ? text : '')
        const t = text
        this.host.cdoc.doc.transact(() => note.set('text', t), this.host.origin)
      }
      this.host.setEditing(id)
      return text as Y.Text
    },
    endEdit: () => this.host.setEditing(null),
    requestDelete: (id) => this.host.requestDelete(id),
    requestMove: (id) => this.host.requestMove(id),
    localTextChange: () => {},
    refusedClick: (id, el) => {
      const view = this.notes.get(id)
      if (view) this.host.explainReadOnly(view.note, this.blocks.get(view.note.block)?.info, el)
    },
  }

  setPeers(peers: readonly Peer[], editors: Map<string, PresenceUser[]>): void {
    this.peers = peers
    this.editors = editors
    // Only notes whose set of editors changed are touched.
    const ids = new Set([...this.editorSig.keys(), ...editors.keys()])
    for (const id of ids) {
      const sig = (editors.get(id) ?? []).map((u) => `${u.id}:${u.name}:${u.color}`).join('|')
      if ((this.editorSig.get(id) ?? '') === sig) continue
      if (sig) this.editorSig.set(id, sig)
      else this.editorSig.delete(id)
      if (this.notes.has(id)) this.dirty.add(id)
    }
    if (this.dirty.size) this.frames.request()
    this.frames.cursors(() => this.renderCursors())
  }

  private cursorEls = new Map<number, { el: HTMLElement; label: string; x: number; y: number }>()

  /** Remote cursors live in screen space (labels stay readable at any zoom), placed from canvas coordinates. */
  renderCursors(): void {
    const live = new Set<number>()
    for (const p of this.peers) {
      const c = p.state.cursor
      if (p.self || !c) continue
      const g = c.block ? this.geom.blocks.get(c.block) : undefined
      const cx = g ? g.rect.x + c.x * g.rect.w : c.x * this.geom.width
      const cy = g ? g.rect.y + c.y * g.rect.h : c.y * this.geom.height
      const s = this.viewport.toScreen(cx, cy)
      live.add(p.clientId)
      let entry = this.cursorEls.get(p.clientId)
      if (!entry) {
        const el = h('div', { class: 'remote-cursor', 'data-user': p.state.user.id }, h('span', { class: 'remote-cursor-arrow' }), h('span', { class: 'remote-cursor-label' }))
        entry = { el, label: '', x: NaN, y: NaN }
        this.cursorEls.set(p.clientId, entry)
        this.cursorLayer.append(el)
      }
      if (entry.x !== s.x || entry.y !== s.y) {
        entry.x = s.x
        entry.y = s.y
        entry.el.style.transform = `translate(${s.x}px, ${s.y}px)`
      }
      const color = p.state.user.color || '#333333'
      const label = personLabel(p.state.user, this.orgs)
      const key = `${color}\u0001${label}`
      if (entry.label !== key) {
        entry.label = key
        entry.el.style.setProperty('--c', color)
        entry.el.style.setProperty('--c-text', textColorOn(color))
        const l = entry.el.lastElementChild
        if (l) setText(l, label)
      }
    }
    for (const [id, entry] of this.cursorEls) {
      if (!live.has(id)) {
        entry.el.remove()
        this.cursorEls.delete(id)
      }
    }
  }

  /** Where a new note goes in a block: the first free slot in reading order. */
  spotFor(blockId: string): { x: number; y: number } | undefined {
    const g = this.geom.blocks.get(blockId)
    if (!g) return undefined
    const packed = this.packs.get(blockId) ?? { pos: new Map(), height: 0 }
    const hs = new Map([...packed.pos.keys()].map((id) => [id, this.heightOf(id)]))
    return nextSlot(packed, hs, g.area.w, g.baseH, NOTE_MIN_H)
  }

  // --- viewport API (fit, zoom to block, phone: one block at a time) ------------------------

  get singleBlockMode(): boolean {
    return this.viewport.size().w <= SINGLE_BLOCK_MAX_W
  }

  private initialView(): void {
    if (this.singleBlockMode) this.showBlock(this.current || this.order[0]?.id || '')
    else this.fitAll()
  }

  /** Re-fit after a resize unless the person moved the view themselves. */
  resized(): void {
    if (!this.userMoved) this.initialView()
    this.frames.cursors(() => this.renderView())
  }

  fitAll(reason: 'user' | 'api' = 'api'): void {
    this.viewport.fitAll(reason)
    if (reason === 'user') this.userMoved = false
  }

  zoomToBlock(id: string, reason: 'user' | 'api' = 'api'): void {
    const g = this.geom.blocks.get(id)
    if (!g) return
    if (this.singleBlockMode) this.viewport.fitWidth(g.rect, reason)
    else this.viewport.fitRect(g.rect, { padding: 24, maxScale: 1.5 }, reason)
  }

  zoomTo(scale: number, reason: 'user' | 'api' = 'api'): void {
    this.viewport.zoomTo(scale, undefined, reason)
  }

  panTo(x: number, y: number, reason: 'user' | 'api' = 'api'): void {
    this.viewport.panTo(x, y, reason)
  }

  /** Phone: show this block alone, filling the width. */
  showBlock(id: string): void {
    if (!this.blocks.has(id)) return
    this.current = id
    this.navSelect.value = id
    this.zoomToBlock(id, 'api')
  }

  stepBlock(step: number): void {
    const next = this.neighbourBlock(this.current, step)
    if (next) {
      this.showBlock(next.id)
      this.focusBlock(next.id)
    }
  }

  /** Show a canvas area (another person's `viewport.visibleRect()`), whole and centred. */
  showRect(rect: Rect, reason: 'user' | 'api' = 'api'): void {
    this.viewport.fitRect(rect, { padding: 0, maxScale: 3 }, reason)
  }

  blockRect(id: string): Rect | undefined {
    return this.geom.blocks.get(id)?.rect
  }

  // --- focus and keys --------------------------------------------------------------------

  focusNote(id: string): void {
    this.notes.get(id)?.el.focus({ preventScroll: true })
    this.revealNote(id)
  }

  focusBlock(id: string): void {
    const v = this.blocks.get(id) ?? (this.order[0] ? this.blocks.get(this.order[0].id) : undefined)
    v?.section.focus({ preventScroll: true })
  }

  private noteRect(id: string): Rect | undefined {
    const v = this.notes.get(id)
    const home = v?.home
    const g = home ? this.geom.blocks.get(home) : undefined
    const p = home ? this.packs.get(home)?.pos.get(id) : undefined
    if (!g || !p) return undefined
    return { x: g.area.x + p.left, y: g.area.y + p.top, w: NOTE_W, h: this.heights.get(id)?.full ?? NOTE_MIN_H }
  }

  private onFocusIn(e: FocusEvent): void {
    const t = e.target as HTMLElement
    const noteId = t.closest<HTMLElement>('.note')?.dataset.noteId
    if (noteId) {
      this.revealNote(noteId)
      return
    }
    const blockId = t.classList.contains('block') ? t.dataset.blockId : undefined
    if (blockId) {
      if (this.singleBlockMode && blockId !== this.current) this.showBlock(blockId)
      const r = this.geom.blocks.get(blockId)?.rect
      if (r) this.viewport.ensureVisible({ ...r, h: Math.min(r.h, 160) })
    }
  }

  startEdit(id: string): void {
    this.notes.get(id)?.startEdit()
    this.revealNote(id)
  }

  /** The block `step` places away from `blockId` in reading order (wrapping). */
  neighbourBlock(blockId: string, step: number): BlockInfo | undefined {
    const i = this.order.findIndex((b) => b.id === blockId)
    if (i < 0 || this.order.length === 0) return this.order[0]
    return this.order[(i + step + this.order.length) % this.order.length]
  }

  private onKeyDown(e: KeyboardEvent): void {
    const target = e.target as HTMLElement
    if (target.tagName === 'TEXTAREA' || target.tagName === 'BUTTON' || target.tagName === 'INPUT' || target.tagName === 'SELECT') return
    if (e.ctrlKey || e.metaKey) return
    const noteEl = target.classList.contains('note') ? target : null
    const blockEl = target.classList.contains('block') ? target : null
    // Zoom keys anywhere on the board ("+" on a block adds a note, as before).
    if (!e.altKey && (e.key === '=' || (e.key === '+' && !blockEl) || e.key === '-' || e.key === '_' || e.key === '0')) {
      if (e.key === '0') this.fitAll('user')
      else this.viewport.zoomBy(e.key === '-' || e.key === '_' ? 1 / 1.25 : 1.25, undefined, 'user')
      e.preventDefault()
      return
    }
    if (noteEl) {
      const id = noteEl.dataset.noteId ?? ''
      const view = this.notes.get(id)
      if (!view) return
      if ((e.key === 'Enter' || e.key === 'F2') && !e.altKey) {
        if (!view.startEdit()) this.host.explainReadOnly(view.note, this.blocks.get(view.note.block)?.info, view.el)
        e.preventDefault()
      } else if (e.key === 'Delete' || e.key === 'Backspace') {
        this.host.requestDelete(id)
        e.preventDefault()
      } else if (e.key === 'm' || e.key === 'M') {
        this.host.requestMove(id)
        e.preventDefault()
      } else if (e.altKey && ['ArrowRight', 'ArrowDown', 'ArrowLeft', 'ArrowUp'].includes(e.key)) {
        const step = e.key === 'ArrowRight' || e.key === 'ArrowDown' ? 1 : -1
        const target = this.neighbourBlock(view.note.block, step)
        if (target) this.host.moveNote(id, target.id, null)
        e.preventDefault()
      } else if (e.key === 'ArrowRight' || e.key === 'ArrowDown' || e.key === 'ArrowLeft' || e.key === 'ArrowUp') {
        this.focusSibling(noteEl, e.key === 'ArrowRight' || e.key === 'ArrowDown' ? 1 : -1)
        e.preventDefault()
      } else if (e.key === 'Escape') {
        this.focusBlock(view.note.block)
        e.preventDefault()
      }
      return
    }
    if (blockEl) {
      const id = blockEl.dataset.blockId ?? ''
      if (e.key === 'n' || e.key === 'N' || e.key === 'Insert' || e.key === '+') {
        this.host.addNote(id)
        e.preventDefault()
      } else if (e.key === 'z' || e.key === 'Z') {
        this.zoomToBlock(id, 'user')
        e.preventDefault()
      } else if (e.key === 'Enter') {
        // Into the block: its first note, if any.
        const first = this.blocks.get(id)?.area.querySelector<HTMLElement>('.note')
        first?.focus()
        e.preventDefault()
      } else if (e.key === 'ArrowRight' || e.key === 'ArrowDown' || e.key === 'ArrowLeft' || e.key === 'ArrowUp') {
        const step = e.key === 'ArrowRight' || e.key === 'ArrowDown' ? 1 : -1
        const next = this.neighbourBlock(id, step)
        if (next) this.focusBlock(next.id)
        e.preventDefault()
      }
    }
  }

  private focusSibling(noteEl: HTMLElement, step: number): void {
    const all = [...(noteEl.parentElement?.querySelectorAll<HTMLElement>('.note') ?? [])]
    const i = all.indexOf(noteEl)
    all[(i + step + all.length) % all.length]?.focus()
  }

  /** A spot in a block's notes area as the stored fractions (relative to its base size). */
  private fractions(g: BlockGeom, left: number, top: number, noteH: number): { x: number; y: number } {
    return {
      x: clamp01(left / Math.max(1, g.area.w - NOTE_W)),
      y: clamp01(top / Math.max(1, g.baseH - noteH)),
    }
  }

  private onDoubleClick(e: MouseEvent): void {
    const t = e.target as HTMLElement
    if (t.closest('.note, button')) return
    // Double-click a block's title: zoom to that block.
    const head = t.closest<HTMLElement>('.block-head')
    if (head) {
      const id = head.closest<HTMLElement>('.block')?.dataset.blockId
      if (id) this.zoomToBlock(id, 'user')
      return
    }
    const pt = this.viewport.toCanvas(e.clientX, e.clientY)
    const g = geomBlockAt(this.geom, pt.x, pt.y)
    if (!g) return
    this.host.addNote(g.id, this.fractions(g, pt.x - g.area.x - NOTE_W / 2, pt.y - g.area.y - 10, NOTE_MIN_H))
  }

  private lastCursorSent = 0
  private onPointerMove(e: PointerEvent): void {
    const now = performance.now()
    if (now - this.lastCursorSent < 50) return
    this.lastCursorSent = now
    const pt = this.viewport.toCanvas(e.clientX, e.clientY)
    const g = geomBlockAt(this.geom, pt.x, pt.y)
    if (g) this.host.setCursor({ block: g.id, x: clamp01((pt.x - g.rect.x) / g.rect.w), y: clamp01((pt.y - g.rect.y) / g.rect.h) })
    else this.host.setCursor({ block: null, x: clamp01(pt.x / Math.max(1, this.geom.width)), y: clamp01(pt.y / Math.max(1, this.geom.height)) })
  }

  /** Pointer drag: a note follows the pointer and lands in the block whose rectangle holds the pointer. */
  private attachDrag(view: NoteView): void {
    const el = view.el
    el.addEventListener('pointerdown', (e) => {
      if (e.button !== 0 || view.editing || this.viewport.spacePressed) return
      if ((e.target as HTMLElement).closest('button')) return
      const block = this.blocks.get(view.note.block)
      if (!this.host.canEditNote(view.note, block?.info)) return
      const startX = e.clientX
      const startY = e.clientY
      const start = this.viewport.toCanvas(startX, startY)
      const rect = this.noteRect(view.note.id)
      const grab = rect ? { x: start.x - rect.x, y: start.y - rect.y } : { x: NOTE_W / 2, y: 10 }
      let dragging = false
      // Listen on window rather than capturing the pointer: a plain click must still reach
      // the textarea (click-to-edit), and capture would retarget it to the note.
      const cancel = (): void => {
        window.removeEventListener('pointermove', move)
        window.removeEventListener('pointerup', up)
        window.removeEventListener('pointercancel', up)
        el.classList.remove('dragging')
        el.style.translate = ''
      }
      const move = (ev: PointerEvent): void => {
        if (ev.pointerId !== e.pointerId) return
        if (this.viewport.pinching) {
          cancel()
          return
        }
        const s = this.viewport.state.scale
        const dx = (ev.clientX - startX) / s
        const dy = (ev.clientY - startY) / s
        if (!dragging && Math.hypot(ev.clientX - startX, ev.clientY - startY) < 5) return
        dragging = true
        el.classList.add('dragging')
        el.style.translate = `${dx}px ${dy}px`
        ev.preventDefault()
      }
      const up = (ev: PointerEvent): void => {
        if (ev.pointerId !== e.pointerId) return
        cancel()
        if (!dragging || ev.type === 'pointercancel') return
        view.suppressClick = true
        setTimeout(() => (view.suppressClick = false), 0)
        const pt = this.viewport.toCanvas(ev.clientX, ev.clientY)
        const g = geomBlockAt(this.geom, pt.x, pt.y)
        const target = g ? this.blocks.get(g.id) : undefined
        if (!g || !target) return
        if (!this.host.canAddTo(target.info)) {
          this.host.refused(`${target.info.title} is locked.`)
          return
        }
        this.host.moveNote(view.note.id, g.id, this.fractions(g, pt.x - grab.x - g.area.x, pt.y - grab.y - g.area.y, this.heightOf(view.note.id)))
        queueMicrotask(() => el.focus({ preventScroll: true }))
      }
      window.addEventListener('pointermove', move)
      window.addEventListener('pointerup', up)
      window.addEventListener('pointercancel', up)
    })
  }

  destroy(): void {
    this.frames.cancel()
    this.viewport.destroy()
  }
}

function place(el: HTMLElement, r: Rect): void {
  const s = el.style
  const l = `${r.x}px`
  const t = `${r.y}px`
  const w = `${r.w}px`
  const hh = `${r.h}px`
  if (s.left !== l) s.left = l
  if (s.top !== t) s.top = t
  if (s.width !== w) s.width = w
  if (s.height !== hh) s.height = hh
}

function sameRect(a: Rect, b: Rect): boolean {
  return a.x === b.x && a.y === b.y && a.w === b.w && a.h === b.h
}

export { NOTE_MAX_H }
