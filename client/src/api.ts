// Thin typed wrappers over the server's REST API. URLs are relative to the origin
// because the same server serves the SPA.
import type { Role } from './session'

export type TemplateId = 'business-model' | 'value-proposition' | 'partner-co-creation'

export const TEMPLATES: ReadonlyArray<{ id: TemplateId; label: string }> = [
  { id: 'business-model', label: 'Business Model Canvas' },
  { id: 'value-proposition', label: 'Value Proposition Canvas' },
  { id: 'partner-co-creation', label: 'Partner co-creation canvas' },
]

export function templateLabel(id: string): string {
  return TEMPLATES.find((t) => t.id === id)?.label ?? id
}

export interface CanvasSummary {
  id: string
  title: string
  template: string
  created_at: number | string
}

export interface OrgInfo {
  id: string
  name: string
  color: string
  initials: string
}

export interface CreateCanvasRequest {
  title: string
  template: TemplateId
  orgs?: Array<{ name: string; color?: string }>
  facilitator_name?: string
}

export interface CreatedCanvas extends CanvasSummary {
  settings: { protect_notes: boolean }
  orgs: OrgInfo[]
  facilitator_token: string
}

export interface CanvasJson {
  id: string
  title: string
  template: string
  settings: Record<string, unknown>
  blocks: Record<string, unknown>
  notes: Record<string, unknown>
  orgs: Record<string, unknown>
}

export interface Invite {
  id: string
  url: string
  org_id: string
  role: Role
  expires_at: number | string
  max_uses: number | null
  uses: number
  revoked: boolean
}

export interface CreateInviteRequest {
  org_id: string
  role: Role
  expires_in_s: number
  max_uses: number | null
}

export interface Redeemed {
  token: string
  canvas_id: string
  user_id: string
  name: string
  org_id: string
  role: Role
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`${status}: ${detail}`)
    this.name = 'ApiError'
  }
}

async function detailOf(res: Response): Promise<string> {
  try {
    const body: unknown = await res.json()
    if (body && typeof body === 'object' && 'detail' in body) {
      const d = (body as { detail: unknown }).detail
      if (typeof d === 'string') return d
      // A 422 lists field errors: say what each one means, not its JSON.
      if (Array.isArray(d)) {
        const msgs = d.map((e) => (e && typeof e === 'object' && 'msg' in e ? String((e as { msg: unknown }).msg) : '')).filter(Boolean)
        if (msgs.length) return msgs.join('; ')
      }
      return JSON.stringify(d)
    }
  } catch {
    // not JSON: fall through to the status text
  }
  return res.statusText || 'request failed'
}

async function request<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (token) headers.Authorization = `Bearer ${token}`
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? null : JSON.stringify(body),
  })
  if (!res.ok) throw new ApiError(res.status, await detailOf(res))
  if (res.status === 204) return undefined as T
  return (await res.json()) as T
}

const enc = encodeURIComponent

export const api = {
  // `operatorKey`: only needed when the server has COCANVAS_ADMIN_TOKEN set (401 otherwise).
  listCanvases: (operatorKey?: string | null) =>
    request<CanvasSummary[]>('GET', '/api/canvases', undefined, operatorKey ?? undefined),
  createCanvas: (req: CreateCanvasRequest, operatorKey?: string | null) =>
    request<CreatedCanvas>('POST', '/api/canvases', req, operatorKey ?? undefined),
  getCanvas: (id: string, token: string) =>
    request<CanvasJson>('GET', `/api/canvases/${enc(id)}`, undefined, token),
  createInvite: (canvasId: string, token: string, req: CreateInviteRequest) =>
    request<Invite>('POST', `/api/canvases/${enc(canvasId)}/invites`, req, token),
  listInvites: (canvasId: string, token: string) =>
    request<Invite[]>('GET', `/api/canvases/${enc(canvasId)}/invites`, undefined, token),
  revokeInvite: (canvasId: string, token: string, inviteId: string) =>
    request<unknown>('DELETE', `/api/canvases/${enc(canvasId)}/invites/${enc(inviteId)}`, undefined, token),
  addOrg: (canvasId: string, token: string, name: string) =>
    request<OrgInfo>('POST', `/api/canvases/${enc(canvasId)}/orgs`, { name }, token),
  redeemInvite: (inviteId: string, name: string) =>
    request<Redeemed>('POST', `/api/invites/${enc(inviteId)}/redeem`, { name }),
}
