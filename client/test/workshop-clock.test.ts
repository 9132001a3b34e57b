import { describe, expect, it } from 'vitest'
import { ServerClock, formatRemaining, offsetFrom, remainingMs } from '../src/workshop/clock'

describe('server time for timers', () => {
  it('takes the offset halfway through the round trip', () => {
    expect(offsetFrom(10_000, 1_000, 1_200)).toBe(8_900)
  })

  it('counts down from ends_at in server time, keeps a paused remainder, and ends at zero', () => {
    expect(remainingMs({ state: 'running', ends_at: 60_000 }, 15_000)).toBe(45_000)
    expect(remainingMs({ state: 'running', ends_at: 60_000 }, 75_000)).toBe(0)
    expect(remainingMs({ state: 'paused', paused_remaining: 12_345 }, 99_999)).toBe(12_345)
    expect(remainingMs({ state: 'stopped', ends_at: 60_000 }, 0)).toBe(0)
  })

  it('shows whole seconds, rounded up', () => {
    expect(formatRemaining(299_001)).toBe('5:00')
    expect(formatRemaining(61_000)).toBe('1:01')
    expect(formatRemaining(0)).toBe('0:00')
  })

  it('learns a skewed local clock from the fastest of three exchanges', async () => {
    const clock = new ServerClock()
    const skew = 40 * 60_000
    const fake = (async () => new Response(JSON.stringify({ now_ms: Date.now() + skew }), { status: 200 })) as typeof fetch
    await clock.sync(fake)
    expect(Math.abs(clock.now() - (Date.now() + skew))).toBeLessThan(100)
  })
})
