// A small overview of the whole canvas in the board's corner, shown only while part of the
// canvas is off screen: the panels as boxes, the visible area as a frame; pressing or
// dragging on it pans there. A pointer aid only (keyboard users have Fit, Z and Tab).
import { h } from './dom'
import type { Geometry, Rect } from './geometry'
import type { Viewport } from './viewport'

const MAX_W = 180
const MAX_H = 130

export class Overview {
  readonly el: HTMLElement
  private readonly shapes: HTMLElement
  private readonly frame: HTMLElement
  private content: Rect = { x: 0, y: 0, w: 1, h: 1 }
  private k = 1
  private signature = ''

  constructor(private readonly viewport: Viewport) {
    this.shapes = h('div', { class: 'overview-shapes' })
    this.frame = h('div', { class: 'overview-frame' })
    this.el = h('div', { class: 'overview', 'aria-hidden': 'true', title: 'Overview: press or drag to pan', hidden: true }, this.shapes, this.frame)
    let dragging = false
    const go = (e: PointerEvent): void => {
      const r = this.el.getBoundingClientRect()
      this.viewport.panTo(this.content.x + (e.clientX - r.left) / this.k, this.content.y + (e.clientY - r.top) / this.k, 'user')
    }
    this.el.addEventListener('pointerdown', (e) => {
      dragging = true
      this.el.setPointerCapture?.(e.pointerId)
      go(e)
      e.preventDefault()
      e.stopPropagation()
    })
    this.el.addEventListener('pointermove', (e) => {
      if (dragging) go(e)
    })
    const stop = (): void => {
      dragging = false
    }
    this.el.addEventListener('pointerup', stop)
    this.el.addEventListener('pointercancel', stop)
    this.el.addEventListener('wheel', (e) => e.stopPropagation())
  }

  /** Geometry changed: redraw the boxes (only when the panels moved). */
  setGeometry(geom: Geometry, content: Rect): void {
    const sig = geom.panels.map((p) => `${p.key}:${p.shape.x},${p.shape.y},${p.shape.w},${p.shape.h}`).join('|')
    this.content = content
    this.k = Math.min(MAX_W / Math.max(1, content.w), MAX_H / Math.max(1, content.h))
    this.el.style.width = `${Math.round(content.w * this.k)}px`
    this.el.style.height = `${Math.round(content.h * this.k)}px`
    if (sig === this.signature) return
    this.signature = sig
    this.shapes.replaceChildren(
      ...geom.panels.map((p) => {
        const box = h('div', { class: `overview-shape overview-${p.type}` })
        this.place(box, p.shape)
        const org = p.key.startsWith('vm:') ? p.key.slice(3) : ''
        if (org) box.dataset.org = org
        return box
      }),
    )
  }

  /** The view moved: show the frame, or hide the overview when everything is on screen. */
  update(hide: boolean): void {
    const v = this.viewport.visibleRect()
    const c = this.content
    const allVisible = v.x <= c.x && v.y <= c.y && v.x + v.w >= c.x + c.w && v.y + v.h >= c.y + c.h
    const hidden = hide || allVisible
    if (this.el.hidden !== hidden) this.el.hidden = hidden
    if (hidden) return
    const x = Math.max(c.x, v.x)
    const y = Math.max(c.y, v.y)
    this.place(this.frame, { x, y, w: Math.max(0, Math.min(c.x + c.w, v.x + v.w) - x), h: Math.max(0, Math.min(c.y + c.h, v.y + v.h) - y) })
  }

  private place(el: HTMLElement, r: Rect): void {
    el.style.left = `${(r.x - this.content.x) * this.k}px`
    el.style.top = `${(r.y - this.content.y) * this.k}px`
    el.style.width = `${r.w * this.k}px`
    el.style.height = `${r.h * this.k}px`
  }
}
