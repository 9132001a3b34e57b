// The workshop's HTTP routes (server/api/workshop.py, server/api/console.py).

export class WorkshopApi {
  constructor(
    private readonly canvasId: string,
    private readonly token: string,
  ) {}

  async call<T = unknown>(method: string, tail: string, body?: unknown): Promise<T> {
    const r = await fetch(`/api/canvases/${encodeURIComponent(this.canvasId)}${tail}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const data = (await r.json().catch(() => null)) as unknown
    if (!r.ok) {
      const detail = (data as { detail?: unknown } | null)?.detail
      const msg = Array.isArray(detail) ? detail.map((d: { msg?: string }) => d.msg ?? '').join('; ') : String(detail ?? r.statusText)
      throw new Error(msg)
    }
    return data as T
  }
}
