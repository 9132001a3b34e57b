// The canvas board: panels (BMC grid, value map squares, customer profile circle) with
// blocks, and the notes inside them. Notes are kept by id across re-renders, so a note
// moving between blocks keeps its element, text binding and focus.
import * as Y from 'yjs'
import { blockLabel } from './a11y'
import { textColorOn } from './colors'
import { h, setAttr, setText } from './dom'
import { lockIcon } from './icons'
import {
  BMC_TEMPLATE_AREAS,
  PROFILE_TEMPLATE_AREAS,
  VALUE_MAP_TEMPLATE_AREAS,
  buildLayout,
  layoutSignature,
  readingOrder,
  type Panel,
} from './layout'
import { allBlocks, allNotes, allOrgs, clamp01, orgLabel, type BlockInfo, type CanvasDoc, type NoteInfo, type OrgView } from './model'
import { NoteView, type NoteCallbacks } from './noteview'
import type { Cursor, Peer, PresenceUser } from './presence'
import { personLabel } from './presence'

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

export class Board {
  readonly el: HTMLElement
  private readonly panelsHost: HTMLElement
  private readonly cursorLayer: HTMLElement
  private blocks = new Map<string, BlockView>()
  private notes = new Map<string, NoteView>()
  private order: BlockInfo[] = []
  private signature = ''
  private editors = new Map<string, PresenceUser[]>()
  private peers: readonly Peer[] = []
  private orgs = new Map<string, OrgView>()

  constructor(private readonly host: BoardHost) {
    this.panelsHost = h('div', { class: 'panels' })
    this.cursorLayer = h('div', { class: 'cursor-layer', 'aria-hidden': 'true' })
    // One shared description each, so every note and block tells how to operate it.
    const help = h(
      'div',
      { hidden: true },
      h('span', { id: 'note-keys-help' }, 'Enter to edit, Escape to stop editing, M to move to another block, Alt+arrow keys to move to the next or previous block, Delete to delete.'),
      h('span', { id: 'block-keys-help' }, 'N to add a note, Enter to go to its first note, arrow keys for the next or previous block.'),
    )
    this.el = h('div', { class: 'board', id: 'board' }, help, this.panelsHost, this.cursorLayer)
    this.el.addEventListener('keydown', (e) => this.onKeyDown(e))
    this.el.addEventListener('pointermove', (e) => this.onPointerMove(e))
    this.el.addEventListener('pointerleave', () => this.host.setCursor(null))
    this.el.addEventListener('dblclick', (e) => this.onDoubleClick(e))
  }

  get blockOrder(): readonly BlockInfo[] {
    return this.order
  }

  blockInfo(id: string): BlockInfo | undefined {
    return this.blocks.get(id)?.info
  }

  noteView(id: string): NoteView | undefined {
    return this.notes.get(id)
  }

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
    this.renderNotes(allNotes(cdoc))
    this.renderCursors()
  }

  private rebuild(panels: Panel[]): void {
    const active = document.activeElement
    const focusNote = active instanceof HTMLElement ? active.closest<HTMLElement>('.note')?.dataset.noteId : undefined
    const focusBlock = active instanceof HTMLElement && active.classList.contains('block') ? active.dataset.blockId : undefined
    this.blocks.clear()
    this.order = readingOrder(panels)
    const nodes: HTMLElement[] = []
    const template = String(this.host.cdoc.meta.get('template') ?? '')
    this.el.dataset.template = template
    const maps = panels.filter((p) => p.type === 'value-map')
    const mapsRow = maps.length ? h('div', { class: 'value-maps' }) : null
    for (const panel of panels) {
      const node = this.renderPanel(panel)
      if (panel.type === 'value-map' && mapsRow) mapsRow.append(node)
      else nodes.push(node)
      if (panel.type === 'value-map' && mapsRow && panel === maps[maps.length - 1]) {
        // The fit arrow between offer and customer, as drawn on the paper canvas.
        nodes.push(mapsRow, h('div', { class: 'fit-arrow', 'aria-hidden': 'true' }, '⇄'))
      }
    }
    const hasVpc = panels.some((p) => p.type === 'customer-profile' || p.type === 'value-map')
    this.panelsHost.className = hasVpc ? 'panels panels-vpc' : 'panels'
    // Shapes share the row: each gets 1/(maps+profile) of the width (see styles.css).
    this.panelsHost.style.setProperty('--shapes', String(maps.length + (panels.some((p) => p.type === 'customer-profile') ? 1 : 0)))
    this.panelsHost.replaceChildren(...nodes)
    for (const view of this.notes.values()) view.el.remove()
    if (focusNote) queueMicrotask(() => this.focusNote(focusNote))
    else if (focusBlock) queueMicrotask(() => this.focusBlock(focusBlock))
  }

  private renderPanel(panel: Panel): HTMLElement {
    const order = readingOrder([panel])
    const byId = new Map(panel.cells.map((c) => [c.block.id, c.area]))
    const grid = h('div', { class: `panel-grid panel-grid-${panel.type}` })
    if (panel.type === 'bmc') grid.style.gridTemplateAreas = BMC_TEMPLATE_AREAS
    if (panel.type === 'value-map') grid.style.gridTemplateAreas = VALUE_MAP_TEMPLATE_AREAS
    if (panel.type === 'customer-profile') grid.style.gridTemplateAreas = PROFILE_TEMPLATE_AREAS
    for (const b of order) {
      const view = this.createBlock(b, byId.get(b.id) ?? '')
      this.blocks.set(b.id, view)
      grid.append(view.section)
    }
    if (panel.type === 'bmc') return h('div', { class: 'panel panel-bmc', 'data-panel': panel.key }, grid)
    const heading = h('h2', { class: 'panel-title' }, panel.title)
    const attrs = { class: `panel panel-${panel.type}`, 'data-panel': panel.key }
    if (panel.type === 'value-map' && panel.org) {
      const org = orgLabel(this.orgs, panel.org)
      heading.prepend(h('span', { class: 'org-chip', style: `--org:${org.color};--org-text:${textColorOn(org.color)}` }, org.initials), ' ')
      const el = h('div', { ...attrs, style: `--org:${org.color}` }, heading, h('div', { class: 'shape shape-square' }, grid))
      return el
    }
    const shape = panel.type === 'customer-profile' ? 'shape shape-circle' : 'shape shape-square'
    return h('div', attrs, heading, h('div', { class: panel.type === 'other' ? 'shape shape-other' : shape }, grid))
  }

  private createBlock(b: BlockInfo, area: string): BlockView {
    // Inside a partner's value map the panel heading already names the partner.
    const orgName = b.org ? this.orgs.get(b.org)?.name : undefined
    const shown = orgName && b.title.endsWith(` — ${orgName}`) ? b.title.slice(0, -(orgName.length + 3)) : b.title
    const title = h('h3', { class: 'block-title' }, shown)
    const lockBadge = h('span', { class: 'lock-badge', hidden: true }, lockIcon(true), ' locked')
    const addBtn = h('button', { type: 'button', class: 'btn btn-small btn-icon add-note', title: `Add a note (N)` }, '+')
    addBtn.setAttribute('aria-label', `Add note to ${b.title}`)
    addBtn.addEventListener('click', () => this.host.addNote(b.id))
    let lockBtn: HTMLButtonElement | null = null
    if (this.host.isFacilitator()) {
      lockBtn = h('button', { type: 'button', class: 'btn btn-small btn-icon lock-toggle' }, lockIcon(false))
      lockBtn.addEventListener('click', () => this.host.toggleLock(b.id))
    }
    const area_ = h('div', { class: 'notes-area', 'data-block-id': b.id })
    const section = h(
      'section',
      { class: `block kind-${b.kind}`, tabindex: 0, 'data-block-id': b.id, 'data-kind': b.kind, 'aria-describedby': 'block-keys-help' },
      h('header', { class: 'block-head' }, title, lockBadge, h('span', { class: 'spacer' }), lockBtn, addBtn),
      b.hint ? h('p', { class: 'block-hint' }, b.hint) : null,
      area_,
    )
    if (area) section.style.gridArea = area
    return { info: b, section, title, lockBadge, addBtn, lockBtn, area: area_ }
  }

  private updateBlock(view: BlockView, b: BlockInfo): void {
    view.info = b
    const locked = b.lockedBy !== ''
    view.lockBadge.hidden = !locked
    view.section.classList.toggle('locked', locked)
    const canAdd = this.host.canAddTo(b)
    view.addBtn.hidden = !canAdd
    if (view.lockBtn) {
      if (view.lockBtn.dataset.locked !== String(locked)) {
        view.lockBtn.dataset.locked = String(locked)
        view.lockBtn.replaceChildren(lockIcon(locked))
      }
      setAttr(view.lockBtn, 'title', locked ? 'Unlock this block' : 'Lock this block')
      setAttr(view.lockBtn, 'aria-pressed', String(locked))
      setAttr(view.lockBtn, 'aria-label', `${locked ? 'Unlock' : 'Lock'} ${b.title}`)
    }
  }

  private renderNotes(notes: NoteInfo[]): void {
    const seen = new Set<string>()
    const counts = new Map<string, number>()
    for (const n of notes) {
      seen.add(n.id)
      let view = this.notes.get(n.id)
      if (!view) {
        view = new NoteView(n, this.host.origin, this.noteCallbacks)
        this.attachDrag(view)
        this.notes.set(n.id, view)
      }
      view.syncText((this.host.cdoc.notes.get(n.id) as Y.Map<unknown> | undefined)?.get('text'))
      const block = this.blocks.get(n.block) ?? this.fallbackBlock()
      const blockTitle = block?.info.title ?? 'no block'
      view.update(n, orgLabel(this.orgs, n.org), blockTitle, this.host.canEditNote(n, block?.info), this.editors.get(n.id) ?? [])
      if (block && view.el.parentElement !== block.area) {
        const hadFocus = view.el.contains(document.activeElement)
        block.area.append(view.el)
        if (hadFocus) view.el.focus()
      }
      if (block) counts.set(block.info.id, (counts.get(block.info.id) ?? 0) + 1)
    }
    for (const [id, view] of this.notes) {
      if (!seen.has(id)) {
        const hadFocus = view.el.contains(document.activeElement)
        const blockId = view.note.block
        view.destroy()
        this.notes.delete(id)
        if (hadFocus) this.focusBlock(blockId)
      }
    }
    for (const [id, view] of this.blocks) setAttr(view.section, 'aria-label', blockLabel(view.info, counts.get(id) ?? 0))
  }

  /** Notes whose block is unknown (another tool, a deleted partner) still need a home. */
  private fallbackBlock(): BlockView | undefined {
    const first = this.order[0]
    return first ? this.blocks.get(first.id) : undefined
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
  }

  setPeers(peers: readonly Peer[], editors: Map<string, PresenceUser[]>): void {
    this.peers = peers
    const changed = new Set([...this.editors.keys(), ...editors.keys()])
    this.editors = editors
    for (const id of changed) {
      const view = this.notes.get(id)
      if (!view) continue
      const block = this.blocks.get(view.note.block)
      view.update(view.note, orgLabel(this.orgs, view.note.org), block?.info.title ?? 'no block', this.host.canEditNote(view.note, block?.info), editors.get(id) ?? [])
    }
    this.renderCursors()
  }

  private cursorEls = new Map<number, HTMLElement>()

  /** Cursor elements are kept per client so their position can glide (CSS transition). */
  renderCursors(): void {
    const boardRect = this.el.getBoundingClientRect()
    const live = new Set<number>()
    for (const p of this.peers) {
      const c = p.state.cursor
      if (p.self || !c) continue
      let x: number
      let y: number
      const block = c.block ? this.blocks.get(c.block) : undefined
      if (block) {
        const r = block.section.getBoundingClientRect()
        x = r.left - boardRect.left + c.x * r.width
        y = r.top - boardRect.top + c.y * r.height
      } else {
        x = c.x * boardRect.width
        y = c.y * boardRect.height
      }
      live.add(p.clientId)
      let el = this.cursorEls.get(p.clientId)
      if (!el) {
        el = h('div', { class: 'remote-cursor', 'data-user': p.state.user.id }, h('span', { class: 'remote-cursor-arrow' }), h('span', { class: 'remote-cursor-label' }))
        this.cursorEls.set(p.clientId, el)
        this.cursorLayer.append(el)
      }
      const color = p.state.user.color || '#333333'
      el.style.left = `${x}px`
      el.style.top = `${y}px`
      el.style.setProperty('--c', color)
      el.style.setProperty('--c-text', textColorOn(color))
      const label = el.lastElementChild
      if (label) setText(label, personLabel(p.state.user, this.orgs))
    }
    for (const [id, el] of this.cursorEls) {
      if (!live.has(id)) {
        el.remove()
        this.cursorEls.delete(id)
      }
    }
  }

  /** How many notes fit side by side and stacked in a block, for placing new notes. */
  gridFor(blockId: string): { cols: number; rows: number } | undefined {
    const area = this.blocks.get(blockId)?.area
    if (!area) return undefined
    const r = area.getBoundingClientRect()
    if (r.width === 0 || r.height === 0) return undefined
    const { w, hgt } = noteSize(area)
    return { cols: Math.max(1, Math.floor(r.width / (w + 6))), rows: Math.max(1, Math.floor(r.height / (hgt + 6))) }
  }

  focusNote(id: string): void {
    this.notes.get(id)?.el.focus()
  }

  focusBlock(id: string): void {
    ;(this.blocks.get(id) ?? this.fallbackBlock())?.section.focus()
  }

  startEdit(id: string): void {
    this.notes.get(id)?.startEdit()
  }

  /** The block `step` places away from `blockId` in reading order (wrapping). */
  neighbourBlock(blockId: string, step: number): BlockInfo | undefined {
    const i = this.order.findIndex((b) => b.id === blockId)
    if (i < 0 || this.order.length === 0) return this.order[0]
    return this.order[(i + step + this.order.length) % this.order.length]
  }

  private onKeyDown(e: KeyboardEvent): void {
    const target = e.target as HTMLElement
    if (target.tagName === 'TEXTAREA' || target.tagName === 'BUTTON' || target.tagName === 'INPUT') return
    if (e.ctrlKey || e.metaKey) return
    const noteEl = target.classList.contains('note') ? target : null
    const blockEl = target.classList.contains('block') ? target : null
    if (noteEl) {
      const id = noteEl.dataset.noteId ?? ''
      const view = this.notes.get(id)
      if (!view) return
      if ((e.key === 'Enter' || e.key === 'F2') && !e.altKey) {
        if (!view.startEdit()) this.host.refused('This note cannot be edited by you.')
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

  private onDoubleClick(e: MouseEvent): void {
    const area = (e.target as HTMLElement).closest<HTMLElement>('.notes-area')
    if (!area || (e.target as HTMLElement).closest('.note')) return
    const id = area.dataset.blockId ?? ''
    const r = area.getBoundingClientRect()
    const { w, hgt } = noteSize(area)
    this.host.addNote(id, {
      x: clamp01((e.clientX - r.left - w / 2) / Math.max(1, r.width - w)),
      y: clamp01((e.clientY - r.top - 10) / Math.max(1, r.height - hgt)),
    })
  }

  private lastCursorSent = 0
  private onPointerMove(e: PointerEvent): void {
    const now = performance.now()
    if (now - this.lastCursorSent < 50) return
    this.lastCursorSent = now
    const section = (e.target as HTMLElement).closest<HTMLElement>('.block')
    if (section) {
      const r = section.getBoundingClientRect()
      this.host.setCursor({ block: section.dataset.blockId ?? null, x: clamp01((e.clientX - r.left) / r.width), y: clamp01((e.clientY - r.top) / r.height) })
    } else {
      const r = this.el.getBoundingClientRect()
      this.host.setCursor({ block: null, x: clamp01((e.clientX - r.left) / r.width), y: clamp01((e.clientY - r.top) / r.height) })
    }
  }

  /** Pointer drag: a note follows the pointer and lands in whatever block is under it. */
  private attachDrag(view: NoteView): void {
    const el = view.el
    el.addEventListener('pointerdown', (e) => {
      if (e.button !== 0 || view.editing) return
      if ((e.target as HTMLElement).closest('button')) return
      const block = this.blocks.get(view.note.block)
      if (!this.host.canEditNote(view.note, block?.info)) return
      const startX = e.clientX
      const startY = e.clientY
      const rect = el.getBoundingClientRect()
      const grabX = startX - rect.left
      const grabY = startY - rect.top
      let dragging = false
      // Listen on window rather than capturing the pointer: a plain click must still reach
      // the textarea (click-to-edit), and capture would retarget it to the note.
      const move = (ev: PointerEvent): void => {
        if (ev.pointerId !== e.pointerId) return
        const dx = ev.clientX - startX
        const dy = ev.clientY - startY
        if (!dragging && Math.hypot(dx, dy) < 5) return
        dragging = true
        el.classList.add('dragging')
        el.style.transform = `translate(${dx}px, ${dy}px)`
        ev.preventDefault()
      }
      const up = (ev: PointerEvent): void => {
        if (ev.pointerId !== e.pointerId) return
        window.removeEventListener('pointermove', move)
        window.removeEventListener('pointerup', up)
        window.removeEventListener('pointercancel', up)
        el.classList.remove('dragging')
        el.style.transform = ''
        if (!dragging || ev.type === 'pointercancel') return
        view.suppressClick = true
        setTimeout(() => (view.suppressClick = false), 0)
        const target = this.blockAt(ev.clientX, ev.clientY)
        if (!target) return
        if (!this.host.canAddTo(target.info)) {
          this.host.refused(`${target.info.title} is locked.`)
          return
        }
        const r = target.area.getBoundingClientRect()
        const { w, hgt } = noteSize(target.area)
        this.host.moveNote(view.note.id, target.info.id, {
          x: clamp01((ev.clientX - grabX - r.left) / Math.max(1, r.width - w)),
          y: clamp01((ev.clientY - grabY - r.top) / Math.max(1, r.height - hgt)),
        })
        queueMicrotask(() => el.focus())
      }
      window.addEventListener('pointermove', move)
      window.addEventListener('pointerup', up)
      window.addEventListener('pointercancel', up)
    })
  }

  private blockAt(x: number, y: number): BlockView | undefined {
    for (const node of document.elementsFromPoint(x, y)) {
      if (!(node instanceof HTMLElement) || node.closest('.note.dragging')) continue
      const id = node.closest<HTMLElement>('.block')?.dataset.blockId
      if (id) return this.blocks.get(id)
    }
    return undefined
  }
}

function noteSize(area: HTMLElement): { w: number; hgt: number } {
  const style = getComputedStyle(area)
  return {
    w: parseFloat(style.getPropertyValue('--note-w')) || 128,
    hgt: parseFloat(style.getPropertyValue('--note-h')) || 92,
  }
}
