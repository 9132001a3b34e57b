// Server time for timers: the document holds ends_at in server epoch ms; each client learns
// how far its own clock is from the server's (GET /api/time, halfway through the round trip).

export interface TimerDoc {
  label?: string
  state?: string
  duration_ms?: number
  ends_at?: number | null
  paused_remaining?: number | null
}

/** offset = server - local, from one /api/time exchange sent at t0 and answered at t1. */
export function offsetFrom(serverNow: number, t0: number, t1: number): number {
  return serverNow - (t0 + t1) / 2
}

export function remainingMs(t: TimerDoc, serverNow: number): number {
  if (t.state === 'running' && typeof t.ends_at === 'number') return Math.max(0, t.ends_at - serverNow)
  if (t.state === 'paused' && typeof t.paused_remaining === 'number') return t.paused_remaining
  return 0
}

export function formatRemaining(ms: number): string {
  const s = Math.ceil(ms / 1000)
  const m = Math.floor(s / 60)
  return `${m}:${String(s % 60).padStart(2, '0')}`
}

export class ServerClock {
  offset = 0
  async sync(fetcher: typeof fetch = fetch): Promise<void> {
    let best = Infinity
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now()
      const r = await fetcher('/api/time')
      const t1 = Date.now()
      if (!r.ok) continue
      const { now_ms } = (await r.json()) as { now_ms: number }
      if (t1 - t0 < best) {
        best = t1 - t0
        this.offset = offsetFrom(now_ms, t0, t1)
      }
    }
  }
  now(): number {
    return Date.now() + this.offset
  }
}
