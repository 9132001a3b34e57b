import { readFileSync, writeFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { attribute, authorOf, creatorOf, IDS } from '../src/attribution'
import { allNotes, canvasDoc } from '../src/model'

const lie = new Map<string, unknown>([['org', 'beta'], ['author', 'u_bob'], ['author_name', 'Bob']])
const orgs = new Set(['alpha', 'beta'])

function writer(base: Y.Doc, client: number): Y.Doc {
  const d = new Y.Doc()
  d.clientID = client
  Y.applyUpdate(d, Y.encodeStateAsUpdate(base))
  return d
}

function sync(into: Y.Doc, from: Y.Doc): void {
  Y.applyUpdate(into, Y.encodeStateAsUpdate(from, Y.encodeStateVector(into)))
}

function addRaw(d: Y.Doc, nid: string, fields: Record<string, unknown>): void {
  d.transact(() => {
    const m = new Y.Map<unknown>()
    for (const [k, v] of Object.entries(fields)) m.set(k, v)
    d.getMap('notes').set(nid, m)
  })
}

describe('attribution (the mirror of server/canvas/attribution.py)', () => {
  it('ignores a member note’s own fields and trusts the server’s', () => {
    expect(attribute(lie, { user: 'u_ann', org: 'alpha', name: 'Ann', facilitator: false }, orgs)).toEqual({ org: 'alpha', user: 'u_ann', name: 'Ann', by: 'member' })
    expect(attribute(lie, { user: 'u_fac', org: '', name: 'Fran', facilitator: true }, orgs)).toEqual({ org: 'beta', user: 'u_fac', name: 'Fran', by: 'facilitator' })
    expect(attribute(new Map([['org', 'gamma']]), { user: 'u_fac', org: '', name: 'Fran', facilitator: true }, orgs).org).toBe('')
    expect(attribute(lie, { user: ':server', org: '', name: '', facilitator: false }, orgs)).toEqual({ org: 'beta', user: 'u_bob', name: 'Bob', by: 'server' })
    expect(attribute(lie, undefined, orgs).by).toBe('stamped')
    expect(attribute(lie, { user: 'u_ann', org: 'alpha', facilitator: 'yes' }, orgs).org).toBe('alpha')
  })

  it('reads the creating client of the live entry, across replaces and deletes', () => {
    const base = new Y.Doc()
    const a = writer(base, 11)
    addRaw(a, 'n1', { block: 'gains', org: 'beta' })
    sync(base, a)
    const b = writer(base, 22)
    addRaw(b, 'n1', { block: 'gains' })
    b.getMap('notes').delete('n1')
    addRaw(b, 'n1', { block: 'gains' })
    sync(base, b)
    expect(creatorOf(base.getMap('notes'), 'n1')).toBe(22)
    base.getMap('notes').delete('n1')
    expect(creatorOf(base.getMap('notes'), 'n1')).toBe(null)
  })

  it('shows a hostile partner’s note as its creator’s, in every reader', () => {
    const doc = new Y.Doc()
    doc.getMap('orgs').set('alpha', new Y.Map([['name', 'Alpha']]))
    doc.getMap('orgs').set('beta', new Y.Map([['name', 'Beta']]))
    doc.getMap(IDS).set('1002', { user: 'u_ann', org: 'alpha', name: 'Ann', facilitator: false })
    const ann = writer(doc, 1002)
    addRaw(ann, 'a1', { block: 'gains', org: 'beta', author: 'u_bob', author_name: 'Bob' })
    sync(doc, ann)
    expect(authorOf(doc, 'a1')).toEqual({ org: 'alpha', user: 'u_ann', name: 'Ann', by: 'member' })
    expect(allNotes(canvasDoc(doc))[0]).toMatchObject({ org: 'alpha', author: 'u_ann', authorName: 'Ann' })
  })

  // Driven by tests/test_attribution_client.py: documents the server built, the server's
  // attribution of each; this side writes what the client module computes for them.
  const cases = process.env.COCANVAS_ATTRIBUTION_CASES
  it('computes, for documents the server built, what the client shows', () => {
    const input: Array<{ name: string; update: string }> = cases
      ? JSON.parse(readFileSync(cases, 'utf8'))
      : [{ name: 'empty', update: Buffer.from(Y.encodeStateAsUpdate(new Y.Doc())).toString('base64') }]
    const out: Record<string, Record<string, [string, string, string]>> = {}
    for (const c of input) {
      const doc = new Y.Doc()
      Y.applyUpdate(doc, Buffer.from(c.update, 'base64'))
      const seen: Record<string, [string, string, string]> = {}
      doc.getMap('notes').forEach((_v, nid) => {
        const a = authorOf(doc, nid)
        if (a) seen[nid] = [a.org, a.user, a.name]
      })
      const viaModel = Object.fromEntries(allNotes(canvasDoc(doc)).map((n) => [n.id, [n.org, n.author, n.authorName]]))
      expect(viaModel).toEqual(seen)
      doc.getMap('links').forEach((_v, lid) => {
        const a = authorOf(doc, lid, 'links')
        if (a) seen[`links:${lid}`] = [a.org, a.user, a.name]
      })
      doc.getMap('comments').forEach((_v, cid) => {
        const a = authorOf(doc, cid, 'comments')
        if (a) seen[`comments:${cid}`] = [a.org, a.user, a.name]
      })
      out[c.name] = seen
    }
    if (process.env.COCANVAS_ATTRIBUTION_OUT) writeFileSync(process.env.COCANVAS_ATTRIBUTION_OUT, JSON.stringify(out))
    expect(Object.keys(out).length).toBe(input.length)
  })
})
