// Notes inside one block without overlap. A note's stored (x, y) in [0, 1] is where its
// author put it (relative to the block's notes area before it grew); the packer keeps it
// there when it is free and otherwise moves it to the nearest free place, older notes
// first so that a new note never pushes an existing one away. The block grows downwards
// when it is full, so no note ever hides another, a block title or a button.
import { NOTE_GAP, NOTE_W } from './geometry'

export interface PackItem {
  id: string
  x: number
  y: number
  /** The note's box height in canvas units. */
  h: number
  createdAt: number
}

export interface Packed {
  /** Top-left of each note, relative to the notes area. */
  pos: Map<string, { left: number; top: number }>
  /** Height the notes need (at least one note high). */
  height: number
}

interface Box {
  left: number
  top: number
  right: number
  bottom: number
}

function hits(a: Box, b: Box): boolean {
  return a.left < b.right + NOTE_GAP && b.left < a.right + NOTE_GAP && a.top < b.bottom + NOTE_GAP && b.top < a.bottom + NOTE_GAP
}

export function columns(areaW: number): number {
  return Math.max(1, Math.floor((areaW + NOTE_GAP) / (NOTE_W + NOTE_GAP)))
}

/** Deterministic order, the same on every client: oldest first, ties by id. */
function byAge(a: PackItem, b: PackItem): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}

/**
 * Beyond this many notes in one block, free placement (quadratic per note) gives way to a
 * flow layout (linear): a canvas flooded with notes must not freeze everyone's browser.
 */
export const FREE_PLACEMENT_MAX = 150

export function packNotes(items: readonly PackItem[], areaW: number, baseH: number): Packed {
  if (items.length > FREE_PLACEMENT_MAX) return flowNotes(items, areaW)
  const maxLeft = Math.max(0, areaW - NOTE_W)
  const cols = columns(areaW)
  const colLeft = Array.from({ length: cols }, (_, c) => Math.min(maxLeft, c * (NOTE_W + NOTE_GAP)))
  const placed: Box[] = []
  const pos = new Map<string, { left: number; top: number }>()
  let height = 0
  for (const it of [...items].sort(byAge)) {
    const want = { left: clamp(it.x, 0, 1) * maxLeft, top: clamp(it.y, 0, 1) * Math.max(0, baseH - it.h) }
    const free = (left: number, top: number): boolean => {
      const b = { left, top, right: left + NOTE_W, bottom: top + it.h }
      return !placed.some((p) => hits(b, p))
    }
    let best = free(want.left, want.top) ? want : null
    if (!best) {
      // Candidates: every column (and the wanted x) at the top and just under each placed note.
      const lefts = [...new Set([...colLeft, want.left])]
      const tops = [0, want.top, ...placed.map((p) => p.bottom + NOTE_GAP)]
      let bestD = Infinity
      for (const left of lefts) {
        for (const top of tops) {
          if (!free(left, top)) continue
          // Vertical distance weighs more: a note stays near its row rather than jump columns far below.
          const d = (left - want.left) ** 2 + 2 * (top - want.top) ** 2
          if (d < bestD) {
            bestD = d
            best = { left, top }
          }
        }
      }
    }
    const at = best ?? { left: 0, top: Math.max(0, ...placed.map((p) => p.bottom + NOTE_GAP)) }
    placed.push({ left: at.left, top: at.top, right: at.left + NOTE_W, bottom: at.top + it.h })
    pos.set(it.id, at)
    height = Math.max(height, at.top + it.h)
  }
  return { pos, height }
}

/** Columns filled shortest-first in age order: no overlap, O(notes × columns). */
function flowNotes(items: readonly PackItem[], areaW: number): Packed {
  const cols = columns(areaW)
  const maxLeft = Math.max(0, areaW - NOTE_W)
  const bottoms = new Array<number>(cols).fill(0)
  const pos = new Map<string, { left: number; top: number }>()
  for (const it of [...items].sort(byAge)) {
    let c = 0
    for (let i = 1; i < cols; i++) if ((bottoms[i] ?? 0) < (bottoms[c] ?? 0)) c = i
    const top = bottoms[c] ?? 0
    pos.set(it.id, { left: Math.min(maxLeft, c * (NOTE_W + NOTE_GAP)), top })
    bottoms[c] = top + it.h + NOTE_GAP
  }
  return { pos, height: Math.max(0, ...bottoms.map((b) => b - NOTE_GAP)) }
}

/**
 * Where a new note should go: the first free slot in reading order (row by row), as the
 * stored fractions. Below the block's base height y is 1, which the packer resolves to the
 * nearest free place — the next row down, growing the block.
 */
export function nextSlot(packed: Packed, heights: ReadonlyMap<string, number>, areaW: number, baseH: number, newH: number): { x: number; y: number } {
  const maxLeft = Math.max(0, areaW - NOTE_W)
  const cols = columns(areaW)
  const boxes: Box[] = [...packed.pos].map(([id, p]) => ({ left: p.left, top: p.top, right: p.left + NOTE_W, bottom: p.top + (heights.get(id) ?? newH) }))
  const tops = [...new Set([0, ...boxes.map((b) => b.bottom + NOTE_GAP)])].sort((a, b) => a - b)
  for (const top of tops) {
    for (let c = 0; c < cols; c++) {
      const left = Math.min(maxLeft, c * (NOTE_W + NOTE_GAP))
      const b = { left, top, right: left + NOTE_W, bottom: top + newH }
      if (!boxes.some((o) => hits(b, o))) {
        return { x: maxLeft ? left / maxLeft : 0, y: baseH - newH > 0 ? clamp(top / (baseH - newH), 0, 1) : 0 }
      }
    }
  }
  return { x: 0, y: 1 }
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v))
}
