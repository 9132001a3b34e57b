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
