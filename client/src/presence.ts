// Awareness state: who is here, where their pointer is, which note they are editing.
// Parsing is defensive because awareness JSON comes from any connected client.
import type { Role } from './session'

export interface PresenceUser {
  id: string
  name: string
  org: string
  orgName: string
  color: string
  role: Role | string
}

/** Pointer position relative to a block's box (or the whole board when `block` is null). */
export interface Cursor {
  block: string | null
  x: number
  y: number
}

export interface PresenceState {
  user: PresenceUser
  cursor: Cursor | null
  editing: string | null
}

export interface Peer {
  clientId: number
  self: boolean
  state: PresenceState
}

function s(v: unknown): string {
  return typeof v === 'string' ? v : ''
}

function fraction(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : null
}

export function parseState(raw: unknown): PresenceState | null {
  if (typeof raw !== 'object' || raw === null) return null
  const r = raw as Record<string, unknown>
  const u = r.user
  if (typeof u !== 'object' || u === null) return null
  const ur = u as Record<string, unknown>
  const id = s(ur.id)
  if (!id) return null
  let cursor: Cursor | null = null
  if (typeof r.cursor === 'object' && r.cursor !== null) {
    const c = r.cursor as Record<string, unknown>
    const x = fraction(c.x)
    const y = fraction(c.y)
    if (x !== null && y !== null) cursor = { block: typeof c.block === 'string' ? c.block : null, x, y }
  }
  return {
    user: {
      id,
      name: s(ur.name) || 'Anonymous',
      org: s(ur.org),
      orgName: s(ur.orgName),
      color: s(ur.color),
      role: s(ur.role),
    },
    cursor,
    editing: typeof r.editing === 'string' && r.editing ? r.editing : null,
  }
}

export function peersFrom(states: ReadonlyMap<number, unknown>, selfClientId: number): Peer[] {
  const out: Peer[] = []
  for (const [clientId, raw] of states) {
    const state = parseState(raw)
    if (state) out.push({ clientId, self: clientId === selfClientId, state })
  }
  return out
}

export interface Person {
  user: PresenceUser
  self: boolean
  /** Open tabs/devices of this person. */
  connections: number
}

/** One entry per person (user id), self first, then by name — several tabs count once. */
export function peopleHere(peers: readonly Peer[]): Person[] {
  const byUser = new Map<string, Person>()
  for (const p of peers) {
    const existing = byUser.get(p.state.user.id)
    if (existing) {
      existing.connections++
      existing.self ||= p.self
    } else {
      byUser.set(p.state.user.id, { user: p.state.user, self: p.self, connections: 1 })
    }
  }
  return [...byUser.values()].sort(
    (a, b) => Number(b.self) - Number(a.self) || a.user.name.localeCompare(b.user.name) || a.user.id.localeCompare(b.user.id),
  )
}

/** Who edits which note (other people only). */
export function editorsByNote(peers: readonly Peer[]): Map<string, PresenceUser[]> {
  const out = new Map<string, PresenceUser[]>()
  for (const p of peers) {
    if (p.self || !p.state.editing) continue
    const list = out.get(p.state.editing) ?? []
    if (!list.some((u) => u.id === p.state.user.id)) list.push(p.state.user)
    out.set(p.state.editing, list)
  }
  return out
}

/**
 * "Name (Organization)". The org name is looked up in this page's own doc when possible:
 * a peer may announce itself before its first sync, when it knows only its org id.
 */
export function personLabel(u: PresenceUser, orgs?: ReadonlyMap<string, { name: string }>): string {
  const org = (u.org && orgs?.get(u.org)?.name) || u.orgName
  return org ? `${u.name} (${org})` : u.name
}

export interface PresenceChange {
  joined: PresenceUser[]
  left: PresenceUser[]
}

/**
 * Turns presence snapshots into join/leave announcements. A reload or a short network blip
 * looks like leave+join; leaves wait `leaveGraceMs` and are dropped if the person returns.
 * While this page itself is disconnected, nothing is announced (everyone "left" only locally),
 * and for `settleMs` after a (re)sync changes just rebuild the baseline.
 */
export class PresenceTracker {
  private known = new Map<string, PresenceUser>()
  private pendingLeaves = new Map<string, { user: PresenceUser; at: number }>()
  private settleUntil = 0
  private connected = false

  constructor(
    private readonly leaveGraceMs = 3000,
    private readonly settleMs = 1500,
  ) {}

  setConnected(connected: boolean, now: number): void {
    if (connected && !this.connected) this.settleUntil = now + this.settleMs
    if (!connected) this.pendingLeaves.clear()
    this.connected = connected
  }

  /** Feed the current people; returns what to announce now. Call `tick` to flush leaves. */
  update(people: readonly Person[], now: number): PresenceChange {
    const next = new Map<string, PresenceUser>()
    for (const p of people) if (!p.self) next.set(p.user.id, p.user)
    const joined: PresenceUser[] = []
    if (this.connected) {
      // While settling, arrivals are the people already here (no joins announced), but someone
      // seen and then gone is a real leave: it waits out the grace period like any other.
      const settled = now >= this.settleUntil
      for (const [id, u] of next) {
        if (this.pendingLeaves.delete(id)) continue
        if (settled && !this.known.has(id)) joined.push(u)
      }
      for (const [id, u] of this.known) {
        if (!next.has(id) && !this.pendingLeaves.has(id)) this.pendingLeaves.set(id, { user: u, at: now })
      }
      this.known = next
    } else {
      this.pendingLeaves.clear()
    }
    return { joined, left: this.tick(now).left }
  }

  tick(now: number): PresenceChange {
    const left: PresenceUser[] = []
    for (const [id, p] of this.pendingLeaves) {
      if (now - p.at >= this.leaveGraceMs) {
        left.push(p.user)
        this.pendingLeaves.delete(id)
      }
    }
    return { joined: [], left }
  }

  /** Past the settle period after (re)connecting: joins and leaves are being announced. */
  isSettled(now: number): boolean {
    return this.connected && now >= this.settleUntil
  }

  hasPendingLeaves(): boolean {
    return this.pendingLeaves.size > 0
  }
}
