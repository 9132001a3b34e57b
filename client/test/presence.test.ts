import { describe, expect, it } from 'vitest'
import { PresenceTracker, editorsByNote, parseState, peersFrom, peopleHere, personLabel, type Person } from '../src/presence'

const alice = { user: { id: 'u1', name: 'Alice', org: 'acme', orgName: 'Acme', color: '#2f6fdb', role: 'editor' }, cursor: null, editing: null }
const bob = { user: { id: 'u2', name: 'Bob', org: 'beta', orgName: 'Beta', color: '#d9480f', role: 'editor' }, cursor: { block: 'pains', x: 0.5, y: 2 }, editing: 'n1' }

describe('parsing awareness', () => {
  it('ignores states without a user id and clamps cursors', () => {
    expect(parseState({})).toBeNull()
    expect(parseState({ user: { name: 'x' } })).toBeNull()
    expect(parseState(bob)?.cursor).toEqual({ block: 'pains', x: 0.5, y: 1 })
  })

  it('lists each person once even with two tabs, self first', () => {
    const states = new Map<number, unknown>([
      [1, alice],
      [2, bob],
      [3, bob],
      [4, { garbage: true }],
    ])
    const people = peopleHere(peersFrom(states, 2))
    expect(people.map((p) => [p.user.name, p.self, p.connections])).toEqual([
      ['Bob', true, 2],
      ['Alice', false, 1],
    ])
  })

  it('maps notes to the other people editing them', () => {
    const peers = peersFrom(new Map<number, unknown>([[1, alice], [2, bob]]), 1)
    expect(editorsByNote(peers).get('n1')?.map((u) => u.name)).toEqual(['Bob'])
    expect(editorsByNote(peersFrom(new Map<number, unknown>([[2, bob]]), 2)).size).toBe(0)
  })
})

function people(...names: string[]): Person[] {
  return names.map((n) => ({ user: { id: n, name: n, org: '', orgName: '', color: '', role: 'editor' }, self: n === 'me', connections: 1 }))
}

describe('PresenceTracker', () => {
  it('announces joins after the settle period and leaves after the grace period', () => {
    const t = new PresenceTracker(3000, 1000)
    t.setConnected(true, 0)
    expect(t.update(people('me', 'ann'), 100).joined).toEqual([]) // baseline while settling
    expect(t.update(people('me', 'ann', 'bo'), 2000).joined.map((u) => u.name)).toEqual(['bo'])
    expect(t.update(people('me', 'bo'), 3000).left).toEqual([])
    expect(t.tick(4000).left).toEqual([])
    expect(t.tick(6000).left.map((u) => u.name)).toEqual(['ann'])
  })

  it('stays silent when someone reloads within the grace period', () => {
    const t = new PresenceTracker(3000, 0)
    t.setConnected(true, 0)
    t.update(people('me', 'ann'), 1)
    t.update(people('me'), 10)
    const back = t.update(people('me', 'ann'), 500)
    expect(back.joined).toEqual([])
    expect(t.tick(10_000).left).toEqual([])
  })

  it('announces a leave that happens during the settle period (after the grace period)', () => {
    const t = new PresenceTracker(3000, 1500)
    t.setConnected(true, 0)
    expect(t.update(people('me', 'ann', 'bo'), 100).joined).toEqual([])
    expect(t.update(people('me', 'bo'), 800)).toEqual({ joined: [], left: [] })
    expect(t.tick(3000).left).toEqual([])
    expect(t.tick(3800).left.map((u) => u.name)).toEqual(['ann'])
    // …and one who comes back within the grace period, even while settling, is not news.
    const u = new PresenceTracker(3000, 1500)
    u.setConnected(true, 0)
    u.update(people('me', 'ann'), 100)
    u.update(people('me'), 200)
    expect(u.update(people('me', 'ann'), 1000).joined).toEqual([])
    expect(u.tick(10_000).left).toEqual([])
  })

  it('does not announce everyone leaving when this page loses its connection', () => {
    const t = new PresenceTracker(3000, 1000)
    t.setConnected(true, 0)
    t.update(people('me', 'ann', 'bo'), 2000)
    t.setConnected(false, 3000)
    t.update(people('me'), 3001)
    expect(t.tick(20_000).left).toEqual([])
    t.setConnected(true, 21_000)
    expect(t.update(people('me', 'ann', 'bo'), 21_100).joined).toEqual([])
  })
})

describe('personLabel', () => {
  it('prefers the org name from the local doc over what the peer announced', () => {
    const u = { id: 'u', name: 'Bob', org: 'beta', orgName: 'beta', color: '', role: 'editor' }
    expect(personLabel(u, new Map([['beta', { name: 'Beta Labs' }]]))).toBe('Bob (Beta Labs)')
    expect(personLabel(u)).toBe('Bob (beta)')
    expect(personLabel({ ...u, org: '', orgName: '' })).toBe('Bob')
  })
})
