// One sticky note's DOM. The textarea is always bound to the note's Y.Text, so remote
// typing shows live; it is read-only until the user enters edit mode (Enter or click).
import * as Y from 'yjs'
import { noteLabel } from './a11y'
import { textColorOn, tint } from './colors'
import { h, setAttr, setText } from './dom'
import type { NoteInfo, OrgView } from './model'
import type { PresenceUser } from './presence'
import { bindTextarea, type TextBinding } from './textbinding'

export interface NoteCallbacks {
  /** Entering edit mode; returns the Y.Text to bind (upgrading a plain string), or null if refused. */
  beginEdit(id: string): Y.Text | null
  endEdit(id: string): void
  requestDelete(id: string): void
  requestMove(id: string): void
  localTextChange(id: string): void
  /** A click on a note this person may not change (the board says why). */
  refusedClick(id: string, el: HTMLElement): void
}

export class NoteView {
  readonly el: HTMLDivElement
  private readonly badge: HTMLSpanElement
  private readonly who: HTMLSpanElement
  private readonly textarea: HTMLTextAreaElement
  private readonly editorsTag: HTMLSpanElement
  /** Room for other features' badges and counts (votes, comments), in the note's header. */
  readonly decor: HTMLSpanElement
  private readonly moveBtn: HTMLButtonElement
  private readonly deleteBtn: HTMLButtonElement
  private binding: TextBinding | null = null
  private bound: Y.Text | null = null
  private editable = false
  editing = false
  /** Set by a drag that just ended, so its trailing click does not open the editor. */
  suppressClick = false
  note: NoteInfo
  /** The block whose notes area holds this note (the board's bookkeeping). */
  home: string | undefined
  /** What its block's packing last saw of it (position, age, height). */
  layoutKey = ''
  private placed = { left: NaN, top: NaN, h: NaN, full: NaN }

  constructor(
    note: NoteInfo,
    private readonly origin: unknown,
    private readonly cb: NoteCallbacks,
  ) {
    this.note = note
    this.badge = h('span', { class: 'note-badge', 'aria-hidden': 'true' })
    this.who = h('span', { class: 'note-who', 'aria-hidden': 'true' })
    this.editorsTag = h('span', { class: 'note-editors', 'aria-hidden': 'true' })
    this.decor = h('span', { class: 'note-decor' })
    this.textarea = h('textarea', {
      class: 'note-text',
      readonly: true,
      tabindex: -1,
      'aria-label': 'Note text',
      spellcheck: 'true',
    })
    this.moveBtn = h('button', { type: 'button', class: 'note-btn note-move', tabindex: -1, title: 'Move to another block (M)' }, '⇄')
    this.deleteBtn = h('button', { type: 'button', class: 'note-btn note-delete', tabindex: -1, title: 'Delete note (Delete)' }, '✕')
    this.el = h(
      'div',
      {
        class: 'note',
        tabindex: 0,
        role: 'group',
        'aria-roledescription': 'sticky note',
        'aria-describedby': 'note-keys-help',
        'aria-keyshortcuts': 'Enter M Delete Alt+ArrowRight Alt+ArrowLeft',
        'data-note-id': note.id,
      },
      h('div', { class: 'note-head' }, this.badge, this.who, this.decor, this.moveBtn, this.deleteBtn),
      this.textarea,
      this.editorsTag,
    )
    this.moveBtn.addEventListener('click', () => this.cb.requestMove(this.note.id))
    this.deleteBtn.addEventListener('click', () => this.cb.requestDelete(this.note.id))
    this.textarea.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.preventDefault()
        e.stopPropagation()
        this.stopEdit(true)
      }
    })
    this.textarea.addEventListener('focusout', () => {
      if (this.editing) this.stopEdit(false)
    })
    // Click-to-edit on the whole note: the read-only textarea ignores the pointer so a
    // press can start a drag instead of a text selection.
    this.el.addEventListener('click', (e) => {
      if (this.suppressClick || (e.target as HTMLElement).closest('button')) return
      if (this.editing) return
      if (this.editable) this.startEdit()
      else this.cb.refusedClick(this.note.id, this.el)
    })
  }

  get textareaEl(): HTMLTextAreaElement {
    return this.textarea
  }

  /** (Re)binds when the note's text object changes identity (e.g. upgraded from a string). */
  syncText(ytext: unknown): void {
    if (ytext instanceof Y.Text) {
      if (ytext !== this.bound) {
        this.binding?.destroy()
        this.bound = ytext
        this.binding = bindTextarea(this.textarea, ytext, this.origin, () => this.cb.localTextChange(this.note.id))
      }
    } else {
      this.binding?.destroy()
      this.binding = null
      this.bound = null
      const text = typeof ytext === 'string' ? ytext : ''
      if (this.textarea.value !== text) this.textarea.value = text
    }
  }

  update(note: NoteInfo, org: OrgView, blockTitle: string, editable: boolean, editors: readonly PresenceUser[]): void {
    this.note = note
    this.editable = editable
    // The org's colour is the note's colour; the initials badge says the same in text.
    const color = org.id || !note.color ? org.color : note.color
    setVar(this.el, '--org', color)
    setVar(this.el, '--org-text', textColorOn(color))
    setVar(this.el, '--note-bg', tint(color, 0.82))
    setText(this.badge, org.initials)
    setAttr(this.badge, 'title', org.name)
    setText(this.who, note.authorName || 'unknown')
    setAttr(this.who, 'title', `${note.authorName || 'unknown'} · ${org.name}`)
    setAttr(this.el, 'data-org', note.org)
    const names = editors.map((u) => u.name)
    setText(this.editorsTag, names.length ? `✎ ${names.join(', ')}` : '')
    this.el.classList.toggle('remote-editing', names.length > 0)
    if (editors[0]) setVar(this.el, '--editor', editors[0].color || '#333')
    setAttr(this.el, 'aria-label', noteLabel(note, blockTitle, org, names))
    this.el.classList.toggle('readonly', !editable)
    if (this.moveBtn.hidden === editable) this.moveBtn.hidden = !editable
    if (this.deleteBtn.hidden === editable) this.deleteBtn.hidden = !editable
    if (!editable && this.editing) this.stopEdit(false)
  }

  /** Position in its block's notes area (canvas px) and box height; writes only what changed. */
  place(left: number, top: number, height: number, full: number): void {
    const p = this.placed
    if (p.left === left && p.top === top && p.h === height && p.full === full) return
    const s = this.el.style
    if (p.left !== left || p.top !== top) s.transform = `translate(${left}px, ${top}px)`
    if (p.h !== height) s.height = `${height}px`
    if (p.full !== full) s.setProperty('--full-h', `${full}px`)
    this.el.classList.toggle('clipped', full > height)
    this.placed = { left, top, h: height, full }
  }

  startEdit(): boolean {
    if (!this.editable) return false
    const ytext = this.cb.beginEdit(this.note.id)
    if (!ytext) return false
    this.syncText(ytext)
    this.editing = true
    this.el.classList.add('editing')
    this.textarea.readOnly = false
    this.textarea.tabIndex = 0
    this.textarea.focus()
    return true
  }

  stopEdit(refocus: boolean): void {
    if (!this.editing) return
    this.editing = false
    this.el.classList.remove('editing')
    this.textarea.readOnly = true
    this.textarea.tabIndex = -1
    this.cb.endEdit(this.note.id)
    if (refocus) this.el.focus()
  }

  destroy(): void {
    this.binding?.destroy()
    this.binding = null
    this.el.remove()
  }
}

/** Custom properties are written only when they change: a remote edit touches what it changed. */
function setVar(el: HTMLElement, name: string, value: string): void {
  if (el.style.getPropertyValue(name) !== value) el.style.setProperty(name, value)
}
