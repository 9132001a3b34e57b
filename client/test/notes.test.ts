import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { allNotes, canvasDoc, readNote } from '../src/model'
import { addNote, deleteNote, ensureYText, freeSpot, moveNote } from '../src/notes'

const author = { id: 'u1', name: 'Alice', org: 'acme', color: '#2f6fdb' }

describe('notes', () => {
  it('writes every schema field truthfully from the author', () => {
    const c = canvasDoc(new Y.Doc())
    const id = addNote(c, 'pains', author, 'me', { text: 'slow onboarding', now: 42 })
    const m = c.notes.get(id) as Y.Map<unknown>
    expect(m.get('text')).toBeInstanceOf(Y.Text)
    expect(m.get('votes')).toBeInstanceOf(Y.Map)
    // Author and name are not written: the server's ids root says who this client id is.
    expect(m.has('author') || m.has('author_name')).toBe(false)
    c.doc.getMap('ids').set(String(c.doc.clientID), { user: 'u1', org: 'acme', name: 'Alice', facilitator: false })
    expect(readNote(id, m)).toMatchObject({ block: 'pains', text: 'slow onboarding', org: 'acme', author: 'u1', authorName: 'Alice', color: '#2f6fdb', createdAt: 42 })
  })

  it('undoes only the local origin, not a remote one', () => {
    const c = canvasDoc(new Y.Doc())
    const undo = new Y.UndoManager([c.notes], { trackedOrigins: new Set(['me']) })
    const mine = addNote(c, 'pains', author, 'me')
    const theirs = addNote(c, 'gains', { ...author, id: 'u2' }, 'remote')
    undo.undo()
    expect(c.notes.has(mine)).toBe(false)
    expect(c.notes.has(theirs)).toBe(true)
  })

  it('moves a note between blocks and clamps positions', () => {
    const c = canvasDoc(new Y.Doc())
    const id = addNote(c, 'pains', author, 'me')
    moveNote(c, id, 'gains', { x: 1.7, y: -3 }, 'me')
    expect(readNote(id, c.notes.get(id))).toMatchObject({ block: 'gains', x: 1, y: 0 })
    deleteNote(c, id, 'me')
    expect(allNotes(c)).toEqual([])
  })

  it('tolerates a plain-string text and upgrades it to Y.Text on edit', () => {
    const c = canvasDoc(new Y.Doc())
    const m = new Y.Map<unknown>()
    m.set('block', 'pains')
    m.set('text', 'from a script')
    c.notes.set('n', m)
    expect(readNote('n', m)?.text).toBe('from a script')
    const t = ensureYText(c, 'n', 'me')
    expect(t?.toString()).toBe('from a script')
    expect(m.get('text')).toBe(t)
  })
})

describe('freeSpot', () => {
  it('fills a block left to right, top to bottom, without covering notes', () => {
    expect(freeSpot([], 2, 2)).toEqual({ x: 0, y: 0 })
    expect(freeSpot([{ x: 0, y: 0 }], 2, 2)).toEqual({ x: 1, y: 0 })
    expect(freeSpot([{ x: 0, y: 0 }, { x: 1, y: 0 }], 2, 2)).toEqual({ x: 0, y: 1 })
  })
  it('still returns a spot inside the block when it is full', () => {
    const spot = freeSpot([{ x: 0, y: 0 }], 1, 1)
    expect(spot.x).toBeGreaterThanOrEqual(0)
    expect(spot.x).toBeLessThanOrEqual(1)
  })
})
