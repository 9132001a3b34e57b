// @vitest-environment jsdom
import { describe, expect, it } from 'vitest'
import { Viewport, MAX_SCALE, MIN_SCALE } from '../src/viewport'

function viewport(w = 800, h = 600): Viewport {
  const el = document.createElement('div')
  const world = document.createElement('div')
  el.append(world)
  Object.defineProperty(el, 'clientWidth', { value: w })
  Object.defineProperty(el, 'clientHeight', { value: h })
  return new Viewport(el, world, () => false)
}

describe('Viewport', () => {
  it('zooms around an anchor: the canvas point under it stays under it', () => {
    const v = viewport()
    v.set({ scale: 0.8, x: 30, y: -40 })
    const anchor = { x: 250, y: 170 }
    const before = { x: (anchor.x - v.state.x) / v.state.scale, y: (anchor.y - v.state.y) / v.state.scale }
    v.zoomBy(1.7, anchor)
    const s = v.toScreen(before.x, before.y)
    expect(s.x).toBeCloseTo(anchor.x, 6)
    expect(s.y).toBeCloseTo(anchor.y, 6)
    expect(v.state.scale).toBeCloseTo(1.36, 6)
  })

  it('fits a rect whole and centred, never past the readable maximum', () => {
    const v = viewport(800, 600)
    v.fitRect({ x: 100, y: 50, w: 1600, h: 900 }, { padding: 0 })
    expect(v.state.scale).toBeCloseTo(0.5, 6)
    const tl = v.toScreen(100, 50)
    const br = v.toScreen(1700, 950)
    expect(tl.x).toBeCloseTo(0, 6)
    expect(br.x).toBeCloseTo(800, 6)
    expect((tl.y + br.y) / 2).toBeCloseTo(300, 6)
    v.fitRect({ x: 0, y: 0, w: 10, h: 10 })
    expect(v.state.scale).toBe(1)
  })

  it('clamps scale, ignores non-finite input, and tells listeners why the view changed', () => {
    const v = viewport()
    const seen: string[] = []
    v.onChange((_s, reason) => seen.push(reason))
    v.zoomTo(100)
    expect(v.state.scale).toBe(MAX_SCALE)
    v.zoomTo(0)
    expect(v.state.scale).toBe(MIN_SCALE)
    v.set({ scale: NaN, x: 0, y: 0 })
    expect(v.state.scale).toBe(MIN_SCALE)
    v.panBy(10, 0, 'user')
    expect(seen).toEqual(['api', 'api', 'user'])
  })

  it('brings a rect on screen with the least movement', () => {
    const v = viewport(800, 600)
    v.set({ scale: 1, x: 0, y: 0 })
    v.ensureVisible({ x: 900, y: 100, w: 100, h: 50 }, 20)
    expect(v.toScreen(1000, 0).x).toBeCloseTo(780, 6)
    expect(v.state.y).toBe(0)
  })
})

describe('Viewport.visibleRect', () => {
  it('round-trips through fitRect on a viewport of the same shape (follow the facilitator)', () => {
    const a = viewport(800, 600)
    a.set({ scale: 0.7, x: -120, y: 45 })
    const seen = a.visibleRect()
    const b = viewport(800, 600)
    b.fitRect(seen, { padding: 0, maxScale: 3 })
    expect(b.state.scale).toBeCloseTo(0.7, 6)
    expect(b.state.x).toBeCloseTo(-120, 6)
    expect(b.state.y).toBeCloseTo(45, 6)
  })
})
