import { describe, expect, it } from 'vitest'
import { RevealWatcher, draftParams, draftsPath, draftsWsBase, revealSentence } from '../src/drafts'
import type { OrgView } from '../src/model'
import { parseRoute } from '../src/router'

const orgs = new Map<string, OrgView>([
  ['alpha', { id: 'alpha', name: 'Alpha', color: '#2f6fdb', initials: 'AL' }],
  ['beta', { id: 'beta', name: 'Beta', color: '#d9480f', initials: 'BE' }],
])

describe('private drafts', () => {
  it('route /c/{id}/drafts, with the facilitator naming the organization', () => {
    expect(parseRoute('/c/abc/drafts')).toEqual({ kind: 'drafts', id: 'abc', org: null })
    expect(parseRoute('/c/abc/drafts/', '?org=beta')).toEqual({ kind: 'drafts', id: 'abc', org: 'beta' })
    expect(draftsPath('abc', 'b e')).toBe('/c/abc/drafts?org=b%20e')
  })

  it('open the draft door, not the canvas door', () => {
    expect(draftsWsBase({ protocol: 'https:', host: 'h:1' })).toBe('wss://h:1/drafts')
    expect(draftParams('t', { org: null })).toEqual({ token: 't' })
    expect(draftParams('t', { org: 'alpha' })).toEqual({ token: 't', org: 'alpha' })
  })

  it('say what a reveal revealed, by organization name', () => {
    expect(revealSentence({ at: 1, count: 3, orgs: ['alpha', 'beta'], by: 'Fran' }, orgs)).toBe('3 drafts of Alpha, Beta revealed by Fran')
    expect(revealSentence({ at: 1, count: 1, orgs: ['gamma'] }, orgs)).toBe('1 draft of gamma revealed')
    expect(revealSentence(null, orgs)).toBeNull()
    expect(revealSentence({ count: 0 }, orgs)).toBeNull()
  })

  it('announce each new reveal once, not the one found on load', () => {
    const said: string[] = []
    const w = new RevealWatcher((s) => said.push(s))
    w.update({ at: 5, count: 2, orgs: ['alpha'] }, orgs, false)
    w.update({ at: 5, count: 2, orgs: ['alpha'] }, orgs, true)
    w.update({ at: 5, count: 2, orgs: ['alpha'] }, orgs, true)
    w.update({ at: 9, count: 1, orgs: ['beta'] }, orgs, true)
    expect(said).toEqual(['1 draft of Beta revealed'])
  })
})
