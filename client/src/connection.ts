// Connection state as a person should see it. Pure logic, fed by the provider's
// 'status', 'sync' and 'closed' events and the doc's local updates.

export type WsStatus = 'connecting' | 'connected' | 'disconnected'

export interface ConnectionState {
  status: WsStatus
  synced: boolean
  /** Has this page ever been connected? Distinguishes "connecting" from "reconnecting". */
  everConnected: boolean
  browserOnline: boolean
  pending: number
  /** A close the server meant (code + reason) — the last one seen. */
  lastClose: { code: number; reason: string } | null
  /** True once the provider gave up (permanent 44xx close). */
  stopped: boolean
}

export function initialConnection(browserOnline = true): ConnectionState {
  return {
    status: 'connecting',
    synced: false,
    everConnected: false,
    browserOnline,
    pending: 0,
    lastClose: null,
    stopped: false,
  }
}

/**
 * Counts local document updates the server has not confirmed by a sync. Updates made
 * while connected and synced are sent at once; anything else waits for the next sync,
 * when the provider exchanges state vectors and sends what the server lacks.
 */
export class PendingCounter {
  private count = 0
  private live = false

  get value(): number {
    return this.count
  }

  localUpdate(): void {
    if (!this.live) this.count++
  }

  status(status: WsStatus): void {
    if (status !== 'connected') this.live = false
  }

  sync(synced: boolean): void {
    this.live = synced
    if (synced) this.count = 0
  }
}

export const CLOSE_MESSAGES: Readonly<Record<number, string>> = {
  4401: 'Your access to this canvas is not valid (anymore). Ask the facilitator for a new invite link.',
  4403: 'You are not allowed to open this canvas.',
  4404: 'This canvas does not exist (anymore).',
  4410: 'Your invite link was revoked by the facilitator.',
  4409: 'This canvas has as many people connected as it allows. Try again in a moment.',
  4413: 'The canvas has reached its maximum size; your last change could not be saved.',
  4429: 'Too many connections or edits — slowing down and retrying.',
  1011: 'The server could not save a change — reconnecting to send it again.',
  1012: 'The server is restarting — reconnecting.',
  1013: 'The connection could not keep up — reconnecting.',
}

/** Close codes after which reconnecting cannot help. 4429 and 1012 are worth retrying. */
export function isPermanentClose(code: number): boolean {
  return code >= 4400 && code < 4500 && code !== 4429
}

/** Permanent closes a person may still retry by hand (capacity, not permission). */
export function isRetryableByHand(code: number): boolean {
  return code === 4409 || code === 4413
}

export type Tone = 'ok' | 'busy' | 'warn' | 'error'

export interface ConnectionView {
  state: 'connected' | 'connecting' | 'syncing' | 'reconnecting' | 'offline' | 'closed'
  label: string
  tone: Tone
}

function pendingText(n: number): string {
  if (n <= 0) return ''
  return n === 1 ? ' — 1 local edit pending' : ` — ${n} local edits pending`
}

export function describeConnection(s: ConnectionState): ConnectionView {
  if (s.stopped) {
    const msg = (s.lastClose && CLOSE_MESSAGES[s.lastClose.code]) ?? 'The server closed the connection.'
    return { state: 'closed', label: `Disconnected: ${msg}${pendingText(s.pending)}`, tone: 'error' }
  }
  if (!s.browserOnline) {
    return { state: 'offline', label: `Offline${pendingText(s.pending)}`, tone: 'warn' }
  }
  if (s.status === 'connected') {
    if (!s.synced) return { state: 'syncing', label: `Syncing…${pendingText(s.pending)}`, tone: 'busy' }
    return { state: 'connected', label: 'Connected', tone: 'ok' }
  }
  if (!s.everConnected) return { state: 'connecting', label: `Connecting…${pendingText(s.pending)}`, tone: 'busy' }
  const why = s.lastClose && CLOSE_MESSAGES[s.lastClose.code] ? ` (${CLOSE_MESSAGES[s.lastClose.code]})` : ''
  return { state: 'reconnecting', label: `Reconnecting…${pendingText(s.pending)}${why}`, tone: 'warn' }
}
