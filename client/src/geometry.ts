// Where every panel and block sits, in canvas units (CSS px at zoom 1). Computed from the
// panels alone (plus how tall each block's notes need to be), never from the window, so
// every client sees the same layout at any zoom or screen size; the viewport only scales it.
import type { Panel } from './layout'

export interface Rect {
  x: number
  y: number
  w: number
  h: number
}

/** Note box: fixed width, height grows with the text between MIN and MAX (see packing.ts). */
export const NOTE_W = 132
export const NOTE_MIN_H = 76
export const NOTE_MAX_H = 196
export const NOTE_GAP = 8

/** A block's chrome: title row and a two-line hint above its notes area. */
export const BLOCK_PAD = 8
export const BLOCK_HEAD_H = 30
export const BLOCK_HINT_H = 34
export const PANEL_TITLE_H = 40
export const PANEL_GAP = 48

const BMC_COL = 320
const BMC_ROW = 330
const BMC_BOTTOM = 270
const MAP_SIDE = 640
const PROFILE_SIDE = 900
/** The profile's blocks sit in a square inset from the circle's edge by this fraction. */
export const PROFILE_INSET = 0.13

export interface BlockGeom {
  id: string
  panel: string
  /** The block, in canvas coordinates. */
  rect: Rect
  /** Where its notes go, in canvas coordinates; `baseH` is its height before it grew. */
  area: Rect
  baseH: number
}

export interface PanelGeom {
  key: string
  type: Panel['type']
  /** Whole panel (title + shape). */
  rect: Rect
  /** The drawn shape (square, circle, BMC frame). */
  shape: Rect
}

export interface Geometry {
  width: number
  height: number
  panels: PanelGeom[]
  blocks: Map<string, BlockGeom>
}

/** Height a block's notes need (from packing); absent = empty. */
export type Needs = ReadonlyMap<string, number>

interface GridCell {
  id: string
  col: number
  row: number
  colSpan?: number
  rowSpan?: number
}

/** Chrome above and below a block's notes area. */
export function blockChrome(hasHint: boolean): { top: number; bottom: number } {
  return { top: BLOCK_PAD + BLOCK_HEAD_H + (hasHint ? BLOCK_HINT_H : 0), bottom: BLOCK_PAD }
}

/**
 * A grid whose rows grow to fit their blocks' notes: single-row cells raise their row,
 * a spanning cell that still lacks room adds the rest to its last row.
 */
function solveGrid(
  cols: readonly number[],
  baseRows: readonly number[],
  cells: readonly GridCell[],
  blockNeed: (id: string, width: number) => number,
): { rows: number[]; rects: Map<string, Rect> } {
  const rows = [...baseRows]
  const colX = cols.map((_, i) => cols.slice(0, i).reduce((a, b) => a + b, 0))
  const width = (c: GridCell): number => cols.slice(c.col, c.col + (c.colSpan ?? 1)).reduce((a, b) => a + b, 0)
  const sorted = [...cells].sort((a, b) => (a.rowSpan ?? 1) - (b.rowSpan ?? 1))
  for (const c of sorted) {
    const span = c.rowSpan ?? 1
    const need = blockNeed(c.id, width(c))
    const have = rows.slice(c.row, c.row + span).reduce((a, b) => a + b, 0)
    const last = c.row + span - 1
    if (need > have && rows[last] !== undefined) rows[last] += need - have
  }
  const rowY = rows.map((_, i) => rows.slice(0, i).reduce((a, b) => a + b, 0))
  const rects = new Map<string, Rect>()
  for (const c of cells) {
    const span = c.rowSpan ?? 1
    rects.set(c.id, {
      x: colX[c.col] ?? 0,
      y: rowY[c.row] ?? 0,
      w: width(c),
      h: rows.slice(c.row, c.row + span).reduce((a, b) => a + b, 0),
    })
  }
  return { rows, rects }
}

const BMC_CELLS: Readonly<Record<string, Omit<GridCell, 'id'>>> = {
  kp: { col: 0, row: 0, rowSpan: 2 },
  ka: { col: 1, row: 0 },
  kr: { col: 1, row: 1 },
  vp: { col: 2, row: 0, rowSpan: 2 },
  cr: { col: 3, row: 0 },
  ch: { col: 3, row: 1 },
  cs: { col: 4, row: 0, rowSpan: 2 },
  // The bottom row splits in half: columns are 2.5 BMC columns each.
  co: { col: 5, row: 2 },
  rv: { col: 6, row: 2 },
}

const MAP_CELLS: Readonly<Record<string, Omit<GridCell, 'id'>>> = {
  ps: { col: 0, row: 0, rowSpan: 2 },
  gc: { col: 1, row: 0 },
  pr: { col: 1, row: 1 },
}

const PROFILE_CELLS: Readonly<Record<string, Omit<GridCell, 'id'>>> = {
  ga: { col: 0, row: 0 },
  pa: { col: 0, row: 1 },
  jo: { col: 1, row: 0, rowSpan: 2 },
}

interface Laid {
  w: number
  h: number
  shape: Rect
  blocks: Map<string, Rect>
}

function cellsOf(panel: Panel, table: Readonly<Record<string, Omit<GridCell, 'id'>>>): GridCell[] {
  return panel.cells.flatMap((c) => {
    const spec = table[c.area]
    return spec ? [{ id: c.block.id, ...spec }] : []
  })
}

function layPanel(panel: Panel, need: (id: string, width: number) => number): Laid {
  const titled = panel.type !== 'bmc'
  const top = titled ? PANEL_TITLE_H : 0
  if (panel.type === 'bmc') {
    // Top rows: five columns; bottom row: two halves. Solved as one grid of 7 columns
    // where the halves are separate columns whose widths add up to the same total.
    const top5 = solveGrid([BMC_COL, BMC_COL, BMC_COL, BMC_COL, BMC_COL], [BMC_ROW, BMC_ROW], cellsOf(panel, BMC_CELLS).filter((c) => c.row < 2), need)
    const half = (BMC_COL * 5) / 2
    const bottom = solveGrid([half, half], [BMC_BOTTOM], cellsOf(panel, BMC_CELLS).filter((c) => c.row === 2).map((c) => ({ ...c, col: c.col - 5, row: 0 })), need)
    const topH = top5.rows.reduce((a, b) => a + b, 0)
    const blocks = new Map(top5.rects)
    for (const [id, r] of bottom.rects) blocks.set(id, { ...r, y: r.y + topH })
    const h = topH + (bottom.rows[0] ?? BMC_BOTTOM)
    return { w: BMC_COL * 5, h, shape: { x: 0, y: 0, w: BMC_COL * 5, h }, blocks }
  }
  if (panel.type === 'value-map') {
    const g = solveGrid([MAP_SIDE / 2, MAP_SIDE / 2], [MAP_SIDE / 2, MAP_SIDE / 2], cellsOf(panel, MAP_CELLS), need)
    const h = g.rows.reduce((a, b) => a + b, 0)
    const blocks = new Map([...g.rects].map(([id, r]) => [id, { ...r, y: r.y + top }]))
    return { w: MAP_SIDE, h: top + h, shape: { x: 0, y: top, w: MAP_SIDE, h }, blocks }
  }
  if (panel.type === 'customer-profile') {
    const inset = PROFILE_SIDE * PROFILE_INSET
    const inner = PROFILE_SIDE - 2 * inset
    const g = solveGrid([inner / 2, inner / 2], [inner / 2, inner / 2], cellsOf(panel, PROFILE_CELLS), need)
    const innerH = g.rows.reduce((a, b) => a + b, 0)
    // A full profile grows into an ellipse rather than letting notes spill out of it.
    const h = innerH + 2 * inset
    const blocks = new Map([...g.rects].map(([id, r]) => [id, { ...r, x: r.x + inset, y: r.y + top + inset }]))
    return { w: PROFILE_SIDE, h: top + h, shape: { x: 0, y: top, w: PROFILE_SIDE, h }, blocks }
  }
  // Other: blocks three to a row, each row as tall as its tallest block.
  const colW = 320
  const perRow = 3
  const blocks = new Map<string, Rect>()
  let y = 0
  for (let i = 0; i < panel.cells.length; i += perRow) {
    const row = panel.cells.slice(i, i + perRow)
    const rowH = Math.max(260, ...row.map((c) => need(c.block.id, colW)))
    row.forEach((c, j) => blocks.set(c.block.id, { x: j * colW, y: top + y, w: colW, h: rowH }))
    y += rowH
  }
  const w = colW * Math.min(perRow, Math.max(1, panel.cells.length))
  return { w, h: top + y, shape: { x: 0, y: top, w, h: y }, blocks }
}

function translate(r: Rect, dx: number, dy: number): Rect {
  return { x: r.x + dx, y: r.y + dy, w: r.w, h: r.h }
}

/** How maps split around the profile: first half to its left, the rest to its right. */
export function sides(n: number): { left: number; right: number } {
  if (n <= 1) return { left: n, right: 0 }
  const left = Math.ceil(n / 2)
  return { left, right: n - left }
}

/**
 * Maps beside the profile: one column up to three maps (on a landscape screen a taller
 * canvas fits larger than a wider one), a full two-by-two for four (eight partners).
 */
function sideGrid(count: number): { cols: number; rows: number } {
  const cols = count <= 3 ? 1 : 2
  return { cols, rows: Math.ceil(count / cols) }
}

/**
 * The whole canvas. Business Model Canvas: one frame. Value proposition and partner co-creation:
 * the customer profile — the thing every partner works towards — central and the largest
 * shape, partners' value maps in columns to its left and right (one map: left of it, as on
 * the paper canvas). Unknown blocks: an "Other" panel below.
 */
export function computeGeometry(panels: readonly Panel[], needs: Needs, hints: ReadonlyMap<string, boolean>): Geometry {
  const need = (id: string): number => {
    const chrome = blockChrome(hints.get(id) ?? false)
    const n = needs.get(id)
    return n === undefined ? 0 : chrome.top + n + chrome.bottom
  }
  const laid = new Map<string, Laid>()
  for (const p of panels) laid.set(p.key, layPanel(p, (id) => need(id)))
  const place = new Map<string, { x: number; y: number }>()
  const maps = panels.filter((p) => p.type === 'value-map')
  const profile = panels.find((p) => p.type === 'customer-profile')
  const bmc = panels.find((p) => p.type === 'bmc')
  let width = 0
  let height = 0

  if (bmc) {
    const l = laid.get(bmc.key)
    if (l) {
      place.set(bmc.key, { x: 0, y: 0 })
      width = l.w
      height = l.h
    }
  }
  if (maps.length || profile) {
    const y0 = height ? height + PANEL_GAP : 0
    const { left, right } = sides(maps.length)
    const column = (list: readonly Panel[]): { w: number; h: number; cells: Array<{ key: string; x: number; y: number }> } => {
      const { cols, rows } = sideGrid(list.length)
      const cells: Array<{ key: string; x: number; y: number }> = []
      const rowH: number[] = []
      for (let r = 0; r < rows; r++) rowH.push(Math.max(0, ...list.slice(r * cols, r * cols + cols).map((p) => laid.get(p.key)?.h ?? 0)))
      list.forEach((p, i) => {
        const r = Math.floor(i / cols)
        const c = i % cols
        cells.push({ key: p.key, x: c * (MAP_SIDE + PANEL_GAP), y: rowH.slice(0, r).reduce((a, b) => a + b + PANEL_GAP, 0) })
      })
      const w = list.length ? cols * MAP_SIDE + (cols - 1) * PANEL_GAP : 0
      const h = rowH.reduce((a, b) => a + b, 0) + Math.max(0, rows - 1) * PANEL_GAP
      return { w, h, cells }
    }
    const l = column(maps.slice(0, left))
    const r = column(maps.slice(left, left + right))
    const p = profile ? laid.get(profile.key) : undefined
    const rowH = Math.max(l.h, r.h, p?.h ?? 0)
    let x = 0
    for (const c of l.cells) place.set(c.key, { x: c.x, y: y0 + (rowH - l.h) / 2 + c.y })
    if (l.w) x = l.w + PANEL_GAP
    if (profile && p) {
      place.set(profile.key, { x, y: y0 + (rowH - p.h) / 2 })
      x += p.w + PANEL_GAP
    }
    for (const c of r.cells) place.set(c.key, { x: x + c.x, y: y0 + (rowH - r.h) / 2 + c.y })
    if (r.w) x += r.w
    else x -= PANEL_GAP
    width = Math.max(width, x)
    height = y0 + rowH
  }
  const other = panels.find((p) => p.type === 'other')
  if (other) {
    const l = laid.get(other.key)
    if (l) {
      const y0 = height ? height + PANEL_GAP : 0
      place.set(other.key, { x: 0, y: y0 })
      width = Math.max(width, l.w)
      height = y0 + l.h
    }
  }

  const out: Geometry = { width, height, panels: [], blocks: new Map() }
  for (const p of panels) {
    const l = laid.get(p.key)
    const at = place.get(p.key)
    if (!l || !at) continue
    out.panels.push({ key: p.key, type: p.type, rect: { x: at.x, y: at.y, w: l.w, h: l.h }, shape: translate(l.shape, at.x, at.y) })
    for (const c of p.cells) {
      const r = l.blocks.get(c.block.id)
      if (!r) continue
      const rect = translate(r, at.x, at.y)
      const chrome = blockChrome(hints.get(c.block.id) ?? false)
      const area = { x: rect.x + BLOCK_PAD, y: rect.y + chrome.top, w: rect.w - 2 * BLOCK_PAD, h: rect.h - chrome.top - chrome.bottom }
      out.blocks.set(c.block.id, { id: c.block.id, panel: p.key, rect, area, baseH: baseAreaHeight(p, c.area, hints.get(c.block.id) ?? false) })
    }
  }
  return out
}

/** The notes area's height before any growth: what stored y fractions are relative to. */
function baseAreaHeight(panel: Panel, area: string, hasHint: boolean): number {
  const chrome = blockChrome(hasHint)
  const inner = PROFILE_SIDE * (1 - 2 * PROFILE_INSET)
  let h = 260
  if (panel.type === 'bmc') h = area === 'co' || area === 'rv' ? BMC_BOTTOM : area === 'kp' || area === 'vp' || area === 'cs' ? 2 * BMC_ROW : BMC_ROW
  else if (panel.type === 'value-map') h = area === 'ps' ? MAP_SIDE : MAP_SIDE / 2
  else if (panel.type === 'customer-profile') h = area === 'jo' ? inner : inner / 2
  return Math.max(NOTE_MIN_H, h - chrome.top - chrome.bottom)
}

/** The block whose rectangle holds a canvas point (drops, cursors): geometry, not the DOM. */
export function blockAt(geom: Geometry, x: number, y: number): BlockGeom | undefined {
  for (const b of geom.blocks.values()) {
    const r = b.rect
    if (x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h) return b
  }
  return undefined
}

export function unionRect(rects: readonly Rect[]): Rect | undefined {
  if (!rects.length) return undefined
  const x = Math.min(...rects.map((r) => r.x))
  const y = Math.min(...rects.map((r) => r.y))
  const x2 = Math.max(...rects.map((r) => r.x + r.w))
  const y2 = Math.max(...rects.map((r) => r.y + r.h))
  return { x, y, w: x2 - x, h: y2 - y }
}
