import { describe, expect, it } from 'vitest'
import { PendingCounter, describeConnection, initialConnection, isPermanentClose } from '../src/connection'

describe('PendingCounter', () => {
  it('counts edits made while disconnected and clears them on the next sync', () => {
    const p = new PendingCounter()
    p.status('connected')
    p.sync(true)
    p.localUpdate()
    expect(p.value).toBe(0) // sent at once
    p.status('disconnected')
    p.localUpdate()
    p.localUpdate()
    expect(p.value).toBe(2)
    p.status('connecting')
    p.status('connected')
    p.localUpdate() // connected but not yet synced: still pending
    expect(p.value).toBe(3)
    p.sync(true)
    expect(p.value).toBe(0)
  })

  it('counts edits made before the first sync', () => {
    const p = new PendingCounter()
    p.localUpdate()
    expect(p.value).toBe(1)
  })
})

describe('describeConnection', () => {
  const base = initialConnection(true)

  it('says connected once synced', () => {
    expect(describeConnection({ ...base, status: 'connected', synced: true, everConnected: true }).label).toBe('Connected')
  })

  it('says offline with the number of local edits pending', () => {
    const v = describeConnection({ ...base, status: 'disconnected', everConnected: true, browserOnline: false, pending: 3 })
    expect(v.state).toBe('offline')
    expect(v.label).toBe('Offline — 3 local edits pending')
  })

  it('says reconnecting after a drop, with the reason for a known close code', () => {
    const v = describeConnection({
      ...base,
      status: 'connecting',
      everConnected: true,
      pending: 1,
      lastClose: { code: 1012, reason: '' },
    })
    expect(v.state).toBe('reconnecting')
    expect(v.label).toContain('1 local edit pending')
    expect(v.label).toContain('restarting')
  })

  it('explains a permanent close', () => {
    const v = describeConnection({ ...base, stopped: true, lastClose: { code: 4410, reason: 'revoked' } })
    expect(v.state).toBe('closed')
    expect(v.label).toContain('revoked')
  })

  it('retries rate limiting but not revocation', () => {
    expect(isPermanentClose(4429)).toBe(false)
    expect(isPermanentClose(1012)).toBe(false)
    expect(isPermanentClose(4410)).toBe(true)
    expect(isPermanentClose(4401)).toBe(true)
  })
})
