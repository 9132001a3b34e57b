import { describe, expect, it } from 'vitest'
import { blockLabel, excerpt, noteLabel } from '../src/a11y'
import { parseOrgNames } from '../src/listpage'
import type { BlockInfo, NoteInfo, OrgView } from '../src/model'
import { buildOutline } from '../src/outline'
import { parseRoute } from '../src/router'

const acme: OrgView = { id: 'acme', name: 'Acme Corp', color: '#2f6fdb', initials: 'AC' }
const block: BlockInfo = { id: 'pains', title: 'Pains', hint: '', order: 0, section: 'customer-profile', kind: 'pains', org: '', lockedBy: '' }
const note: NoteInfo = { id: 'n1', block: 'pains', text: 'Slow\nonboarding', org: 'acme', author: 'u1', authorName: 'Alice', color: '#2f6fdb', x: 0, y: 0, createdAt: 1 }

describe('accessible names', () => {
  it('name a note by block, text, author and organization', () => {
    expect(noteLabel(note, 'Pains', acme)).toBe('Note in Pains: Slow onboarding. by Alice, Acme Corp')
    expect(noteLabel({ ...note, text: '' }, 'Pains', acme, ['Bob'])).toContain('being edited by Bob')
  })

  it('name a block by title, note count and lock', () => {
    expect(blockLabel(block, 1)).toBe('Pains block, 1 note')
    expect(blockLabel({ ...block, lockedBy: 'u9' }, 3)).toBe('Pains block, 3 notes, locked')
  })

  it('shortens long texts', () => {
    expect(excerpt('a'.repeat(100), 10)).toBe('aaaaaaaaa…')
  })
})

describe('outline', () => {
  it('lists notes under their block with author and org, and keeps orphans', () => {
    const orphan = { ...note, id: 'n2', block: 'gone', org: '' }
    const out = buildOutline([block], [note, orphan], new Map([['acme', acme]]))
    expect(out[0]).toEqual({ id: 'pains', title: 'Pains', locked: false, notes: [{ id: 'n1', text: 'Slow\nonboarding', author: 'Alice', org: 'Acme Corp' }] })
    expect(out[1]?.title).toBe('Notes without a block')
    expect(out[1]?.notes[0]?.org).toBe('Facilitation')
  })
})

describe('routes and forms', () => {
  it('parses the three SPA routes', () => {
    expect(parseRoute('/')).toEqual({ kind: 'list' })
    expect(parseRoute('/c/abc123')).toEqual({ kind: 'canvas', id: 'abc123' })
    expect(parseRoute('/i/inv%201/')).toEqual({ kind: 'invite', id: 'inv 1' })
    expect(parseRoute('/x/y/z').kind).toBe('notfound')
  })

  it('reads partner names one per line or comma-separated, without duplicates', () => {
    expect(parseOrgNames('Acme\n beta , ACME\n\n Gamma ')).toEqual(['Acme', 'beta', 'Gamma'])
  })
})
