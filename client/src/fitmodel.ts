// Fit across partners in the shared doc: fit links, value-exchange arrows, overlap marks.
// The vocabulary mirrors server/canvas/fit.py; the server stamps and checks everything, so
// these helpers only decide what the UI offers (a refused write is undone by the server).
import * as Y from 'yjs'
import { authorOf } from './attribution'
import type { BlockInfo, NoteInfo } from './model'
import { newId } from './notes'
import type { Claims } from './session'

export const LINK_KINDS: Readonly<Record<string, string>> = {
  'relievers>pains': 'relieves',
  'creators>gains': 'creates',
  'products>jobs': 'helps-with',
  'key-partners>key-resources': 'provides',
  'key-partners>key-activities': 'performs',
}
export const KIND_LABELS: Readonly<Record<string, string>> = {
  relieves: 'relieves',
  creates: 'creates',
  'helps-with': 'helps with',
  provides: 'provides',
  performs: 'performs',
}
export const STRENGTHS = ['essential', 'nice-to-have'] as const
export type Strength = (typeof STRENGTHS)[number]
export const EXCHANGE_KINDS = ['product', 'service', 'data', 'money', 'referral', 'support'] as const
export const CUSTOMER = 'customer'
export const OVERLAP_MARKS = ['complement', 'competition'] as const

const FROM_KINDS = new Set(Object.keys(LINK_KINDS).map((k) => k.split('>')[0]))

export interface FitDoc {
  links: Y.Map<unknown>
  exchange: Y.Map<unknown>
  overlaps: Y.Map<unknown>
}

export function fitDoc(doc: Y.Doc): FitDoc {
  return { links: doc.getMap('links'), exchange: doc.getMap('exchange'), overlaps: doc.getMap('overlaps') }
}

export interface LinkInfo {
  id: string
  from: string
  to: string
  kind: string
  strength: Strength
  org: string
}

export interface ArrowInfo {
  id: string
  fromOrg: string
  to: string
  kind: string
  note: string
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : ''
}

export function readLinks(f: FitDoc): LinkInfo[] {
  const out: LinkInfo[] = []
  f.links.forEach((v, id) => {
    if (!(v instanceof Y.Map)) return
    const strength = v.get('strength') === 'essential' ? 'essential' : 'nice-to-have'
    // Its organization by the attribution rule (attribution.ts), like a note's.
    const who = v.doc ? authorOf(v.doc, id, 'links') : null
    out.push({ id, from: str(v.get('from')), to: str(v.get('to')), kind: str(v.get('kind')), strength, org: who ? who.org : str(v.get('org')) })
  })
  return out.sort((a, b) => a.id.localeCompare(b.id))
}

export function readArrows(f: FitDoc): ArrowInfo[] {
  const out: ArrowInfo[] = []
  f.exchange.forEach((v, id) => {
    if (!(v instanceof Y.Map)) return
    out.push({ id, fromOrg: str(v.get('from_org')), to: str(v.get('to')), kind: str(v.get('kind')), note: str(v.get('note')) })
  })
  return out.sort((a, b) => a.fromOrg.localeCompare(b.fromOrg) || a.to.localeCompare(b.to) || a.id.localeCompare(b.id))
}

export function linkKind(fromKind: string | undefined, toKind: string | undefined): string | null {
  if (!fromKind || !toKind) return null
  return LINK_KINDS[`${fromKind}>${toKind}`] ?? null
}

/** A link is drawn only when both its notes exist and their blocks fit (as the server judges). */
export function liveLinks(links: LinkInfo[], notes: Map<string, NoteInfo>, blocks: Map<string, BlockInfo>): LinkInfo[] {
  return links.filter((l) => {
    const a = notes.get(l.from)
    const b = notes.get(l.to)
    return !!a && !!b && linkKind(blocks.get(a.block)?.kind, blocks.get(b.block)?.kind) !== null
  })
}

export function isOffer(block: BlockInfo | undefined): boolean {
  return !!block && FROM_KINDS.has(block.kind)
}

/** Whether this person may start a link at this note (the server's rule, for the UI). */
export function mayLinkFrom(me: Claims, note: NoteInfo, block: BlockInfo | undefined, protect: boolean): boolean {
  if (me.role === 'viewer' || !isOffer(block)) return false
  if (me.role === 'facilitator') return true
  if (block?.lockedBy) return false
  return !protect || note.org === me.org
}

export function mayChangeLink(me: Claims, link: LinkInfo, protect: boolean): boolean {
  if (me.role === 'viewer') return false
  return me.role === 'facilitator' || !protect || link.org === me.org
}

export function mayChangeArrow(me: Claims, arrow: ArrowInfo): boolean {
  return me.role === 'facilitator' || (me.role === 'editor' && arrow.fromOrg === me.org)
}

export function addLink(f: FitDoc, from: string, to: string, strength: Strength, me: Claims, kind: string, origin: unknown): string {
  const id = newId()
  f.links.doc?.transact(() => {
    f.links.set(
      id,
      new Y.Map<unknown>(
        // Author and name are not written: they follow from this client's id (attribution.ts).
        Object.entries({ from, to, kind, strength, org: me.org, created_at: Date.now() / 1000 }),
      ),
    )
  }, origin)
  return id
}

export function setStrength(f: FitDoc, id: string, strength: Strength, origin: unknown): void {
  const link = f.links.get(id)
  if (link instanceof Y.Map) f.links.doc?.transact(() => link.set('strength', strength), origin)
}

export function removeEntry(map: Y.Map<unknown>, id: string, origin: unknown): void {
  map.doc?.transact(() => map.delete(id), origin)
}

export function addArrow(f: FitDoc, fromOrg: string, to: string, kind: string, note: string, origin: unknown): string {
  const id = newId()
  f.exchange.doc?.transact(() => {
    f.exchange.set(id, new Y.Map<unknown>(Object.entries({ from_org: fromOrg, to, kind, note: note.slice(0, 500) })))
  }, origin)
  return id
}

export function setOverlap(f: FitDoc, rowNote: string, mark: string, origin: unknown): void {
  f.overlaps.doc?.transact(() => {
    if (mark) f.overlaps.set(rowNote, mark)
    else f.overlaps.delete(rowNote)
  }, origin)
}

/** The server's contribution map (GET /api/canvases/{id}/contribution). */
export interface ContributionCell {
  note: string
  text: string
  link: string
  kind: string
  strength: Strength
}
export interface ContributionRow {
  note: string
  kind: string
  text: string
  votes: number
  cells: Record<string, ContributionCell[]>
  orgs: string[]
  essential: boolean
  status: 'gap' | 'single' | 'overlap'
  overlap: 'complement' | 'competition' | null
}
export interface ContributionMap {
  organizations: Array<{ id: string; name: string; color: string }>
  rows: ContributionRow[]
  gaps: string[]
  overlaps: Array<{ note: string; orgs: string[]; mark: string | null }>
  coverage: Array<{ kind: string; sentence: string }>
  partners: Array<{ org: string; name: string; sentence: string; sole: string[] }>
  exchange: Array<{ id: string; from_org: string; to: string; kind: string; note: string }>
}

export async function fetchContribution(canvasId: string, token: string): Promise<ContributionMap> {
  const r = await fetch(`/api/canvases/${encodeURIComponent(canvasId)}/contribution`, { headers: { authorization: `Bearer ${token}` } })
  if (!r.ok) throw new Error(`contribution map: HTTP ${r.status}`)
  return (await r.json()) as ContributionMap
}
