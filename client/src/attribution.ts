// Who wrote a note (or a fit link, or a comment): its organization and author follow from the client id that
// created it.
// The mirror of server/canvas/attribution.py — the one rule, in one module, on each side.
//
// A note's own org / author / author_name fields are whatever its creator wrote (a hostile
// client can write anything there). The server binds every client id to the identity that
// first used it, refuses structs carrying anyone else's id, and writes who each id is into the
// server-only `ids` root (client id -> {user, org, name, facilitator}) before the id's first
// structs reach anyone. So the creating client of the live entry notes[nid] decides:
//   - bound to the server (':server', ':legacy'): the note's fields are trusted (the server
//     wrote them: HTTP notes, templates, a drafts reveal, a restore);
//   - bound to a facilitator: `org` is trusted if it names a known organization (or is '',
//     the facilitation); author and name from the ids entry;
//   - anyone else: everything from the ids entry, the fields are ignored;
//   - no ids entry: the note predates attribution (stamped by the server then): fields trusted.
import * as Y from 'yjs'

export const IDS = 'ids'
const TRUSTED_USERS = new Set([':server', ':legacy'])

export type AttributedBy = 'server' | 'facilitator' | 'member' | 'stamped'

export interface Author {
  org: string
  user: string
  name: string
  by: AttributedBy
}

interface Fields {
  get(key: string): unknown
}

interface Orgs {
  has(key: string): boolean
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : ''
}

function asWritten(note: Fields, by: AttributedBy): Author {
  return { org: str(note.get('org')), user: str(note.get('author')), name: str(note.get('author_name')), by }
}

/** THE rule: `note`'s fields, `creator` the ids entry of the client id that created the
 * note's entry (undefined when there is none), `orgs` the canvas's organization ids. */
export function attribute(note: Fields, creator: unknown, orgs: Orgs): Author {
  if (creator === null || typeof creator !== 'object' || Array.isArray(creator)) return asWritten(note, 'stamped')
  const c = creator as Record<string, unknown>
  const user = str(c.user)
  if (TRUSTED_USERS.has(user)) return asWritten(note, 'server')
  let org = str(c.org)
  const name = str(c.name)
  if (c.facilitator === true) {
    const named = note.get('org')
    if (typeof named === 'string' && (named === '' || orgs.has(named))) org = named
    return { org, user, name, by: 'facilitator' }
  }
  return { org, user, name, by: 'member' }
}

interface ItemLike {
  id: { client: number; clock: number }
  deleted: boolean
}

/** The client id of the live item holding entries[id] (null: no such entry). */
export function creatorOf(entries: Y.Map<unknown>, id: string): number | null {
  const item = (entries as unknown as { _map: Map<string, ItemLike> })._map.get(id)
  return item && !item.deleted ? item.id.client : null
}

/** A note's (or, with root 'links' or 'comments', a fit link's or a comment's) attribution in
 * its document (null: none). */
export function authorOf(doc: Y.Doc, id: string, root: 'notes' | 'links' | 'comments' = 'notes'): Author | null {
  const entries = doc.getMap(root)
  const entry = entries.get(id)
  const client = creatorOf(entries, id)
  if (!(entry instanceof Y.Map) || client === null) return null
  return attribute(entry as Y.Map<unknown>, doc.getMap(IDS).get(String(client)), doc.getMap('orgs'))
}
