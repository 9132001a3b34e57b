// Tokens live in localStorage keyed by canvas id: a person may hold different roles
// (facilitator on one canvas, viewer on another) and a reload must keep them in.

export type Role = 'editor' | 'viewer' | 'facilitator'

export interface Claims {
  sub: string
  name: string
  org: string
  role: Role
  cid: string
  exp: number
}

const PREFIX = 'cocanvas:token:'

function storage(): Storage | null {
  try {
    return globalThis.localStorage ?? null
  } catch {
    // Some privacy modes throw on access; the app then works for this page view only.
    return null
  }
}

export function saveToken(canvasId: string, token: string, store: Storage | null = storage()): void {
  store?.setItem(PREFIX + canvasId, token)
}

export function loadToken(canvasId: string, store: Storage | null = storage()): string | null {
  return store?.getItem(PREFIX + canvasId) ?? null
}

export function clearToken(canvasId: string, store: Storage | null = storage()): void {
  store?.removeItem(PREFIX + canvasId)
}

export function knownCanvasIds(store: Storage | null = storage()): Set<string> {
  const out = new Set<string>()
  if (!store) return out
  for (let i = 0; i < store.length; i++) {
    const key = store.key(i)
    if (key?.startsWith(PREFIX)) out.add(key.slice(PREFIX.length))
  }
  return out
}

function base64UrlDecode(part: string): string {
  const b64 = part.replace(/-/g, '+').replace(/_/g, '/')
  const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4)
  const binary = atob(padded)
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0))
  return new TextDecoder().decode(bytes)
}

const ROLES: readonly Role[] = ['editor', 'viewer', 'facilitator']

/**
 * Reads the JWT payload for display and UI decisions only. The signature is the
 * server's business: a forged payload just gets the socket closed with 4401.
 */
export function decodeClaims(token: string): Claims | null {
  const parts = token.split('.')
  if (parts.length !== 3 || !parts[1]) return null
  let raw: unknown
  try {
    raw = JSON.parse(base64UrlDecode(parts[1]))
  } catch {
    return null
  }
  if (typeof raw !== 'object' || raw === null) return null
  const r = raw as Record<string, unknown>
  if (typeof r.sub !== 'string' || typeof r.cid !== 'string') return null
  const role = ROLES.includes(r.role as Role) ? (r.role as Role) : 'viewer'
  return {
    sub: r.sub,
    name: typeof r.name === 'string' ? r.name : '',
    org: typeof r.org === 'string' ? r.org : '',
    role,
    cid: r.cid,
    exp: typeof r.exp === 'number' ? r.exp : Number.POSITIVE_INFINITY,
  }
}

export function isExpired(claims: Claims, nowMs: number = Date.now()): boolean {
  return claims.exp * 1000 <= nowMs
}

export function canEdit(claims: Claims): boolean {
  return claims.role === 'editor' || claims.role === 'facilitator'
}

// The operator key (COCANVAS_ADMIN_TOKEN on a multi-node deployment) guards creating and
// listing canvases. It is per browser, not per canvas, so it has its own storage key.
export const OPERATOR_KEY = 'cocanvas.operatorKey'

export function loadOperatorKey(store: Storage | null = storage()): string | null {
  return store?.getItem(OPERATOR_KEY) || null
}

export function saveOperatorKey(key: string, store: Storage | null = storage()): void {
  const k = key.trim()
  if (k) store?.setItem(OPERATOR_KEY, k)
  else store?.removeItem(OPERATOR_KEY)
}

export function forgetOperatorKey(store: Storage | null = storage()): void {
  store?.removeItem(OPERATOR_KEY)
}

/**
 * What the list page says after a canvas-list or create call: nothing when it worked or failed
 * for another reason, a prompt when the server wants a key we did not send, and a clear
 * "wrong key" when the key we sent was refused.
 */
export function operatorKeyPrompt(status: number, sentKey: string | null): 'none' | 'needed' | 'wrong' {
  if (status !== 401) return 'none'
  return sentKey ? 'wrong' : 'needed'
}

/** The server's add rule: editors and facilitators add into any unlocked block (any org's). */
export function mayAddTo(claims: Claims, block: { lockedBy: string }): boolean {
  if (!canEdit(claims)) return false
  return claims.role === 'facilitator' || !block.lockedBy
}

/** Edit, move, delete: with protect_notes an editor touches only their own organization's notes. */
export function mayEditNote(
  claims: Claims,
  note: { org: string },
  block: { lockedBy: string } | undefined,
  protectNotes: boolean,
): boolean {
  if (!canEdit(claims)) return false
  if (claims.role === 'facilitator') return true
  if (block?.lockedBy) return false
  return !(protectNotes && note.org !== claims.org)
}
