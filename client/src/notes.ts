// Mutations of notes in the shared doc. Every write goes through a transaction with the
// caller's origin so the UndoManager can undo exactly this person's changes.
import * as Y from 'yjs'
import type { CanvasDoc } from './model'
import { clamp01 } from './model'

export interface Author {
  id: string
  name: string
  org: string
  color: string
}

export function newId(): string {
  const c = globalThis.crypto
  // randomUUID needs a secure context; plain-http deployments on a LAN still get unique ids.
  if (typeof c?.randomUUID === 'function') return c.randomUUID()
  const bytes = new Uint8Array(16)
  c.getRandomValues(bytes)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

export interface Spot {
  x: number
  y: number
}

/**
 * A free place for a new note in a block: walk a coarse grid in reading order and take
 * the first cell no existing note is close to, so new notes do not hide older ones.
 */
export interface Grid {
  cols: number
  rows: number
}

export function freeSpot(existing: readonly Spot[], cols = 4, rows = 4): Spot {
  cols = Math.max(1, Math.floor(cols))
  rows = Math.max(1, Math.floor(rows))
  const cells: Spot[] = []
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) cells.push({ x: cols === 1 ? 0 : c / (cols - 1), y: rows === 1 ? 0 : r / (rows - 1) })
  }
  const near = (a: Spot, b: Spot): boolean => Math.abs(a.x - b.x) < 0.5 / (cols - 1 || 1) && Math.abs(a.y - b.y) < 0.5 / (rows - 1 || 1)
  const free = cells.find((cell) => !existing.some((e) => near(e, cell)))
  if (free) return free
  // Full block: cascade from the top-left so each extra note still shows its header.
  const k = existing.length % 10
  return { x: clamp01(0.05 * k), y: clamp01(0.06 * k) }
}

export function notesInBlock(c: CanvasDoc, blockId: string, except?: string): Spot[] {
  const out: Spot[] = []
  c.notes.forEach((v, k) => {
    if (k === except || !(v instanceof Y.Map)) return
    if (v.get('block') !== blockId) return
    const x = v.get('x')
    const y = v.get('y')
    if (typeof x === 'number' && typeof y === 'number') out.push({ x, y })
  })
  return out
}

export function addNote(
  c: CanvasDoc,
  blockId: string,
  author: Author,
  origin: unknown,
  opts: { text?: string; at?: Spot; id?: string; now?: number; grid?: Grid } = {},
): string {
  const id = opts.id ?? newId()
  const at = opts.at ?? freeSpot(notesInBlock(c, blockId), opts.grid?.cols, opts.grid?.rows)
  c.doc.transact(() => {
    const note = new Y.Map<unknown>()
    // Fill the map before inserting it: one atomic map entry, observers see a complete note.
    note.set('block', blockId)
    note.set('text', new Y.Text(opts.text ?? ''))
    // Author and name are not written: they follow from this client's id (attribution.ts).
    // The organization is, for a facilitator filing the note under a partner; the server
    // trusts it from facilitators only.
    note.set('org', author.org)
    note.set('color', author.color)
    note.set('x', clamp01(at.x))
    note.set('y', clamp01(at.y))
    note.set('created_at', opts.now ?? Date.now())
    note.set('votes', new Y.Map<number>())
    c.notes.set(id, note)
  }, origin)
  return id
}

export function moveNote(c: CanvasDoc, id: string, blockId: string, at: Spot | null, origin: unknown, grid?: Grid): void {
  const note = c.notes.get(id)
  if (!(note instanceof Y.Map)) return
  const spot = at ?? freeSpot(notesInBlock(c, blockId, id), grid?.cols, grid?.rows)
  c.doc.transact(() => {
    if (note.get('block') !== blockId) note.set('block', blockId)
    note.set('x', clamp01(spot.x))
    note.set('y', clamp01(spot.y))
  }, origin)
}

export function deleteNote(c: CanvasDoc, id: string, origin: unknown): void {
  if (!c.notes.has(id)) return
  c.doc.transact(() => c.notes.delete(id), origin)
}

/**
 * The note's Y.Text, upgrading a plain string (written by other tools) once. The upgrade
 * replaces the value, so it is done only when someone starts editing that note.
 */
export function ensureYText(c: CanvasDoc, id: string, origin: unknown): Y.Text | null {
  const note = c.notes.get(id)
  if (!(note instanceof Y.Map)) return null
  const current = note.get('text')
  if (current instanceof Y.Text) return current
  const text = new Y.Text(typeof current === 'string' ? current : '')
  c.doc.transact(() => note.set('text', text), origin)
  return text
}

export function setBlockLock(c: CanvasDoc, blockId: string, lockedBy: string, origin: unknown): void {
  const block = c.blocks.get(blockId)
  if (!(block instanceof Y.Map)) return
  c.doc.transact(() => block.set('locked_by', lockedBy), origin)
}
