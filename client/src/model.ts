// Plain snapshots of the shared document, read defensively: the doc is written by
// browsers, the server and other tools, so every field may be missing or mistyped.
import * as Y from 'yjs'
import { authorOf } from './attribution'
import { NEUTRAL_COLOR, initials as makeInitials, safeColor } from './colors'

export interface BlockInfo {
  id: string
  title: string
  hint: string
  order: number
  section: string
  kind: string
  org: string
  lockedBy: string
}

export interface NoteInfo {
  id: string
  block: string
  text: string
  org: string
  author: string
  authorName: string
  color: string
  x: number
  y: number
  createdAt: number
}

export interface OrgView {
  id: string
  name: string
  color: string
  initials: string
}

type YMapAny = Y.Map<unknown>

function str(v: unknown, fallback = ''): string {
  return typeof v === 'string' ? v : fallback
}

function num(v: unknown, fallback = 0): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback
}

export function clamp01(v: number): number {
  return Math.min(1, Math.max(0, v))
}

export function textOf(v: unknown): string {
  if (v instanceof Y.Text) return v.toString()
  return typeof v === 'string' ? v : ''
}

export function readBlock(id: string, m: unknown): BlockInfo | null {
  if (!(m instanceof Y.Map)) return null
  const b = m as YMapAny
  return {
    id,
    title: str(b.get('title'), id),
    hint: str(b.get('hint')),
    order: num(b.get('order')),
    section: str(b.get('section')),
    kind: str(b.get('kind')),
    org: str(b.get('org')),
    lockedBy: str(b.get('locked_by')),
  }
}

export function readNote(id: string, m: unknown): NoteInfo | null {
  if (!(m instanceof Y.Map)) return null
  const n = m as YMapAny
  // Organization and author by the attribution rule (attribution.ts), never the note's own
  // fields: those are whatever its creator wrote.
  const who = n.doc ? authorOf(n.doc, id) : null
  return {
    id,
    block: str(n.get('block')),
    text: textOf(n.get('text')),
    org: who ? who.org : str(n.get('org')),
    author: who ? who.user : str(n.get('author')),
    authorName: who ? who.name : str(n.get('author_name')),
    color: safeColor(n.get('color')),
    x: clamp01(num(n.get('x'))),
    y: clamp01(num(n.get('y'))),
    createdAt: num(n.get('created_at')),
  }
}

export function readOrg(id: string, m: unknown): OrgView | null {
  if (!(m instanceof Y.Map)) return null
  const o = m as YMapAny
  const name = str(o.get('name'), id)
  return {
    id,
    name,
    color: safeColor(o.get('color')),
    initials: str(o.get('initials')) || makeInitials(name),
  }
}

export interface CanvasDoc {
  doc: Y.Doc
  meta: Y.Map<unknown>
  blocks: Y.Map<unknown>
  notes: Y.Map<unknown>
  orgs: Y.Map<unknown>
}

export function canvasDoc(doc: Y.Doc): CanvasDoc {
  return {
    doc,
    meta: doc.getMap('meta'),
    blocks: doc.getMap('blocks'),
    notes: doc.getMap('notes'),
    orgs: doc.getMap('orgs'),
  }
}

export function allBlocks(c: CanvasDoc): BlockInfo[] {
  const out: BlockInfo[] = []
  c.blocks.forEach((v, k) => {
    const b = readBlock(k, v)
    if (b) out.push(b)
  })
  return out.sort((a, b) => a.order - b.order || a.id.localeCompare(b.id))
}

export function allNotes(c: CanvasDoc): NoteInfo[] {
  const out: NoteInfo[] = []
  c.notes.forEach((v, k) => {
    const n = readNote(k, v)
    if (n) out.push(n)
  })
  return out.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
}

export function allOrgs(c: CanvasDoc): Map<string, OrgView> {
  const out = new Map<string, OrgView>()
  c.orgs.forEach((v, k) => {
    const o = readOrg(k, v)
    if (o) out.set(k, o)
  })
  return out
}

/** The org as shown on a note: a facilitator without an org still gets a visible label. */
export function orgLabel(orgs: Map<string, OrgView>, orgId: string): OrgView {
  const o = orgs.get(orgId)
  if (o) return o
  if (orgId === '') return { id: '', name: 'Facilitation', color: NEUTRAL_COLOR, initials: 'FA' }
  return { id: orgId, name: orgId, color: NEUTRAL_COLOR, initials: makeInitials(orgId) }
}
