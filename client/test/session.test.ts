// @vitest-environment jsdom
import { describe, expect, it } from 'vitest'
import { canEdit, clearToken, decodeClaims, isExpired, knownCanvasIds, loadToken, saveToken } from '../src/session'

function b64url(s: string): string {
  const bytes = new TextEncoder().encode(s)
  let bin = ''
  for (const b of bytes) bin += String.fromCharCode(b)
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

function jwt(payload: object): string {
  return `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url(JSON.stringify(payload))}.sig`
}

describe('decodeClaims', () => {
  it('reads the display claims, including non-ASCII names', () => {
    const c = decodeClaims(jwt({ sub: 'u1', name: 'Zoë Ørsted', org: 'acme', role: 'editor', cid: 'c1', exp: 2000000000 }))
    expect(c).toEqual({ sub: 'u1', name: 'Zoë Ørsted', org: 'acme', role: 'editor', cid: 'c1', exp: 2000000000 })
  })

  it('rejects garbage and treats an unknown role as viewer', () => {
    expect(decodeClaims('not-a-jwt')).toBeNull()
    expect(decodeClaims('a.b.c')).toBeNull()
    expect(decodeClaims(jwt({ name: 'x' }))).toBeNull()
    expect(decodeClaims(jwt({ sub: 'u', cid: 'c', role: 'admin' }))?.role).toBe('viewer')
  })

  it('knows expiry and edit rights', () => {
    const c = decodeClaims(jwt({ sub: 'u', cid: 'c', role: 'viewer', exp: 100 }))!
    expect(isExpired(c, 99_000)).toBe(false)
    expect(isExpired(c, 100_000)).toBe(true)
    expect(canEdit(c)).toBe(false)
    expect(canEdit({ ...c, role: 'editor' })).toBe(true)
  })
})

describe('token storage', () => {
  it('keeps one token per canvas', () => {
    saveToken('c1', 't1')
    saveToken('c2', 't2')
    expect(loadToken('c1')).toBe('t1')
    expect(knownCanvasIds()).toEqual(new Set(['c1', 'c2']))
    clearToken('c1')
    expect(loadToken('c1')).toBeNull()
  })
})
