// Zoom and pan over a world laid out in canvas units. The world element gets one CSS
// transform (translate + scale); screen = canvas * scale + offset. Wheel pans, Ctrl/⌘+wheel
// and trackpad pinch zoom around the pointer, two-finger touch pinches, dragging empty
// canvas (or anything with Space held) pans. Listeners hear every change, so "follow the
// facilitator" can broadcast it and cursors can be redrawn.
import type { Rect } from './geometry'

export interface ViewState {
  /** Screen px per canvas unit. */
  scale: number
  /** Screen position (relative to the viewport element) of canvas point (0, 0). */
  x: number
  y: number
}

export const MIN_SCALE = 0.1
export const MAX_SCALE = 3

export type ViewListener = (view: ViewState, reason: 'user' | 'api') => void

export class Viewport {
  private view: ViewState = { scale: 1, x: 0, y: 0 }
  private content: Rect = { x: 0, y: 0, w: 1, h: 1 }
  private readonly listeners = new Set<ViewListener>()
  private spaceDown = false
  private readonly pointers = new Map<number, { x: number; y: number }>()
  private pinch: { dist: number; scale: number } | null = null
  private panStart: { id: number; x: number; y: number; vx: number; vy: number; moved: boolean } | null = null
  /** Set while a pan drag just ended, so the trailing click does nothing. */
  suppressClick = false

  constructor(
    readonly el: HTMLElement,
    private readonly world: HTMLElement,
    /** Is this pointerdown target something else's to handle (notes, buttons, fields)? */
    private readonly ownsTarget: (target: HTMLElement) => boolean,
  ) {
    el.addEventListener('wheel', (e) => this.onWheel(e), { passive: false })
    el.addEventListener('pointerdown', (e) => this.onPointerDown(e))
    el.addEventListener('pointermove', (e) => this.onPointerMove(e))
    el.addEventListener('pointerup', (e) => this.onPointerUp(e))
    el.addEventListener('pointercancel', (e) => this.onPointerUp(e))
    el.addEventListener('click', (e) => {
      if (this.suppressClick) {
        e.stopPropagation()
        e.preventDefault()
        this.suppressClick = false
      }
    }, true)
    // Focus and scrollIntoView scroll even an overflow:hidden box; turn that into a pan so
    // canvas coordinates stay transform-only.
    el.addEventListener('scroll', () => {
      if (el.scrollLeft || el.scrollTop) {
        const dx = el.scrollLeft
        const dy = el.scrollTop
        el.scrollLeft = 0
        el.scrollTop = 0
        this.set({ ...this.view, x: this.view.x - dx, y: this.view.y - dy }, 'user')
      }
    })
    window.addEventListener('keydown', this.onSpace, true)
    window.addEventListener('keyup', this.onSpace, true)
    this.apply()
  }

  destroy(): void {
    window.removeEventListener('keydown', this.onSpace, true)
    window.removeEventListener('keyup', this.onSpace, true)
    this.listeners.clear()
  }

  /** Space held: every drag pans, even one that starts on a note. */
  get spacePressed(): boolean {
    return this.spaceDown
  }

  /** Two fingers down: a pinch, which wins over dragging a note. */
  get pinching(): boolean {
    return this.pinch !== null
  }

  get state(): ViewState {
    return { ...this.view }
  }

  onChange(fn: ViewListener): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  /** The world's extent, for fitAll and for keeping some of it on screen. */
  setContent(rect: Rect): void {
    this.content = rect
  }

  size(): { w: number; h: number } {
    return { w: this.el.clientWidth || 1, h: this.el.clientHeight || 1 }
  }

  toCanvas(clientX: number, clientY: number): { x: number; y: number } {
    const r = this.el.getBoundingClientRect()
    return { x: (clientX - r.left - this.view.x) / this.view.scale, y: (clientY - r.top - this.view.y) / this.view.scale }
  }

  /** Viewport-relative screen position of a canvas point. */
  toScreen(x: number, y: number): { x: number; y: number } {
    return { x: x * this.view.scale + this.view.x, y: y * this.view.scale + this.view.y }
  }

  /** The canvas area on screen now: what "follow the facilitator" broadcasts (fitRect shows it elsewhere). */
  visibleRect(): Rect {
    const { w, h } = this.size()
    const s = this.view.scale
    return { x: -this.view.x / s, y: -this.view.y / s, w: w / s, h: h / s }
  }

  /** Zoom to `scale`, keeping the canvas point under `anchor` (viewport px; default: centre) in place. */
  zoomTo(scale: number, anchor?: { x: number; y: number }, reason: 'user' | 'api' = 'api'): void {
    const s = clamp(scale, MIN_SCALE, MAX_SCALE)
    const { w, h } = this.size()
    const a = anchor ?? { x: w / 2, y: h / 2 }
    const cx = (a.x - this.view.x) / this.view.scale
    const cy = (a.y - this.view.y) / this.view.scale
    this.set({ scale: s, x: a.x - cx * s, y: a.y - cy * s }, reason)
  }

  zoomBy(factor: number, anchor?: { x: number; y: number }, reason: 'user' | 'api' = 'api'): void {
    this.zoomTo(this.view.scale * factor, anchor, reason)
  }

  /** Centre the canvas point (x, y) on screen. */
  panTo(x: number, y: number, reason: 'user' | 'api' = 'api'): void {
    const { w, h } = this.size()
    this.set({ ...this.view, x: w / 2 - x * this.view.scale, y: h / 2 - y * this.view.scale }, reason)
  }

  panBy(dx: number, dy: number, reason: 'user' | 'api' = 'api'): void {
    this.set({ ...this.view, x: this.view.x + dx, y: this.view.y + dy }, reason)
  }

  /** Show `rect` whole and centred; never zoom in past `maxScale` (readable, not huge). */
  fitRect(rect: Rect, opts: { padding?: number; maxScale?: number; align?: 'center' | 'top' } = {}, reason: 'user' | 'api' = 'api'): void {
    const pad = opts.padding ?? 16
    const { w, h } = this.size()
    const s = clamp(Math.min((w - 2 * pad) / Math.max(1, rect.w), (h - 2 * pad) / Math.max(1, rect.h), opts.maxScale ?? 1), MIN_SCALE, MAX_SCALE)
    const x = (w - rect.w * s) / 2 - rect.x * s
    const y = opts.align === 'top' ? pad - rect.y * s : (h - rect.h * s) / 2 - rect.y * s
    this.set({ scale: s, x, y }, reason)
  }

  fitAll(reason: 'user' | 'api' = 'api'): void {
    this.fitRect(this.content, {}, reason)
  }

  /** Fit a rect to the viewport's width (phone: one block at a time, read top-down). */
  fitWidth(rect: Rect, reason: 'user' | 'api' = 'api'): void {
    const { w, h } = this.size()
    const pad = 8
    const s = clamp(Math.min((w - 2 * pad) / Math.max(1, rect.w), 1.2), MIN_SCALE, MAX_SCALE)
    const tooTall = rect.h * s > h - 2 * pad
    this.set({ scale: s, x: (w - rect.w * s) / 2 - rect.x * s, y: tooTall ? pad - rect.y * s : (h - rect.h * s) / 2 - rect.y * s }, reason)
  }

  /** Bring a canvas rect on screen with the least movement (keyboard focus). */
  ensureVisible(rect: Rect, margin = 24): void {
    const { w, h } = this.size()
    const s = this.view.scale
    const left = rect.x * s + this.view.x
    const top = rect.y * s + this.view.y
    const right = left + rect.w * s
    const bottom = top + rect.h * s
    let dx = 0
    let dy = 0
    if (right > w - margin) dx = w - margin - right
    if (left + dx < margin) dx = margin - left
    if (bottom > h - margin) dy = h - margin - bottom
    if (top + dy < margin) dy = margin - top
    if (dx || dy) this.panBy(dx, dy, 'user')
  }

  set(view: ViewState, reason: 'user' | 'api' = 'api'): void {
    if (!Number.isFinite(view.scale) || !Number.isFinite(view.x) || !Number.isFinite(view.y)) return
    const next = { scale: clamp(view.scale, MIN_SCALE, MAX_SCALE), x: view.x, y: view.y }
    if (next.scale === this.view.scale && next.x === this.view.x && next.y === this.view.y) return
    this.view = next
    this.apply()
    for (const fn of this.listeners) fn(this.state, reason)
  }

  private apply(): void {
    this.world.style.transform = `translate(${this.view.x}px, ${this.view.y}px) scale(${this.view.scale})`
    this.el.style.setProperty('--zoom', String(this.view.scale))
  }

  private local(e: { clientX: number; clientY: number }): { x: number; y: number } {
    const r = this.el.getBoundingClientRect()
    return { x: e.clientX - r.left, y: e.clientY - r.top }
  }

  private onWheel(e: WheelEvent): void {
    e.preventDefault()
    const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? this.size().h : 1
    if (e.ctrlKey || e.metaKey) {
      // Trackpad pinch arrives as ctrl+wheel with small deltas; a mouse wheel notch is ~100.
      this.zoomBy(Math.exp(-e.deltaY * unit * 0.0025), this.local(e), 'user')
    } else {
      const dx = e.shiftKey && !e.deltaX ? e.deltaY : e.deltaX
      const dy = e.shiftKey && !e.deltaX ? 0 : e.deltaY
      this.panBy(-dx * unit, -dy * unit, 'user')
    }
  }

  private readonly onSpace = (e: KeyboardEvent): void => {
    if (e.key !== ' ' && e.code !== 'Space') return
    const t = e.target as HTMLElement | null
    if (t && (t.tagName === 'TEXTAREA' || t.tagName === 'INPUT' || t.tagName === 'BUTTON' || t.isContentEditable)) return
    this.spaceDown = e.type === 'keydown'
    this.el.classList.toggle('space-pan', this.spaceDown)
    if (e.type === 'keydown' && this.el.contains(t)) e.preventDefault()
  }

  private onPointerDown(e: PointerEvent): void {
    this.pointers.set(e.pointerId, this.local(e))
    if (this.pointers.size === 2) {
      const [a, b] = [...this.pointers.values()]
      if (a && b) this.pinch = { dist: Math.hypot(a.x - b.x, a.y - b.y) || 1, scale: this.view.scale }
      this.panStart = null
      return
    }
    const target = e.target as HTMLElement
    const mayPan = this.spaceDown || e.button === 1 || (e.button === 0 && !this.ownsTarget(target))
    if (!mayPan) return
    this.panStart = { id: e.pointerId, x: e.clientX, y: e.clientY, vx: this.view.x, vy: this.view.y, moved: false }
    if (this.spaceDown || e.button === 1) e.preventDefault()
  }

  private onPointerMove(e: PointerEvent): void {
    if (this.pointers.has(e.pointerId)) this.pointers.set(e.pointerId, this.local(e))
    if (this.pinch && this.pointers.size === 2) {
      const [a, b] = [...this.pointers.values()]
      if (!a || !b) return
      const dist = Math.hypot(a.x - b.x, a.y - b.y) || 1
      this.zoomTo(this.pinch.scale * (dist / this.pinch.dist), { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 }, 'user')
      return
    }
    const p = this.panStart
    if (!p || p.id !== e.pointerId) return
    const dx = e.clientX - p.x
    const dy = e.clientY - p.y
    if (!p.moved && Math.hypot(dx, dy) < 4) return
    if (!p.moved) {
      p.moved = true
      this.el.setPointerCapture?.(e.pointerId)
      this.el.classList.add('panning')
    }
    this.set({ ...this.view, x: p.vx + dx, y: p.vy + dy }, 'user')
  }

  private onPointerUp(e: PointerEvent): void {
    this.pointers.delete(e.pointerId)
    if (this.pointers.size < 2) this.pinch = null
    const p = this.panStart
    if (p && p.id === e.pointerId) {
      if (p.moved) {
        this.suppressClick = true
        setTimeout(() => (this.suppressClick = false), 0)
      }
      this.panStart = null
      this.el.classList.remove('panning')
    }
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v))
}
