// @vitest-environment jsdom
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { edgePoint } from '../src/fitview'
import { addLink, fitDoc, linkKind, liveLinks, mayChangeArrow, mayLinkFrom, readLinks } from '../src/fitmodel'
import type { BlockInfo, NoteInfo } from '../src/model'
import type { Claims, Role } from '../src/session'

const who = (role: Role, org = 'alpha'): Claims => ({ sub: 'u', name: 'U', org, role, cid: 'c', exp: Infinity })
const block = (id: string, kind: string, lockedBy = ''): BlockInfo => ({ id, title: id, hint: '', order: 0, section: '', kind, org: '', lockedBy })
const note = (id: string, blockId: string, org = 'alpha'): NoteInfo => ({ id, block: blockId, text: id, org, author: '', authorName: '', color: '', x: 0, y: 0, createdAt: 0 })

describe('fit links (the server rules, as the UI offers them)', () => {
  it('derives the kind from the two blocks, one way only', () => {
    expect(linkKind('relievers', 'pains')).toBe('relieves')
    expect(linkKind('products', 'jobs')).toBe('helps-with')
    expect(linkKind('pains', 'relievers')).toBeNull()
    expect(linkKind('relievers', 'gains')).toBeNull()
  })

  it('offers links from own offers only when notes are protected, never to viewers or in locked blocks', () => {
    const r = block('r', 'relievers')
    expect(mayLinkFrom(who('editor'), note('n', 'r'), r, true)).toBe(true)
    expect(mayLinkFrom(who('editor', 'beta'), note('n', 'r'), r, true)).toBe(false)
    expect(mayLinkFrom(who('editor', 'beta'), note('n', 'r'), r, false)).toBe(true)
    expect(mayLinkFrom(who('viewer'), note('n', 'r'), r, false)).toBe(false)
    expect(mayLinkFrom(who('editor'), note('n', 'r'), block('r', 'relievers', 'fay'), true)).toBe(false)
    expect(mayLinkFrom(who('editor'), note('n', 'p'), block('p', 'pains'), true)).toBe(false)
    expect(mayChangeArrow(who('editor'), { id: 'a', fromOrg: 'beta', to: 'customer', kind: 'data', note: '' })).toBe(false)
  })

  it('draws only links whose notes exist and fit', () => {
    const f = fitDoc(new Y.Doc())
    addLink(f, 'r1', 'p1', 'essential', who('editor'), 'relieves', null)
    addLink(f, 'r1', 'gone', 'essential', who('editor'), 'relieves', null)
    addLink(f, 'r1', 'j1', 'essential', who('editor'), 'relieves', null)
    const notes = new Map([note('r1', 'r'), note('p1', 'p'), note('j1', 'j')].map((n) => [n.id, n]))
    const blocks = new Map([block('r', 'relievers'), block('p', 'pains'), block('j', 'jobs')].map((b) => [b.id, b]))
    expect(liveLinks(readLinks(f), notes, blocks).map((l) => l.to)).toEqual(['p1'])
  })

  it('ends a line at the edge of each note, not at its centre', () => {
    expect(edgePoint({ x: 0, y: 0, w: 100, h: 50 }, { x: 300, y: 0, w: 100, h: 50 })).toEqual({ x: 100, y: 25 })
    expect(edgePoint({ x: 0, y: 0, w: 100, h: 50 }, { x: 0, y: 200, w: 100, h: 50 })).toEqual({ x: 50, y: 50 })
  })
})
