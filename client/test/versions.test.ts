import { describe, expect, it } from 'vitest'
import { describeGroup, exportFilename, type DiffGroup } from '../src/versions'

const empty = { added: [], removed: [], edited: [], moved: [], votes: [], links_added: [], links_removed: [] }

describe('versions panel', () => {
  it('reads a diff group as sentences', () => {
    const g: DiffGroup = {
      ...empty,
      org: 'beta',
      name: 'Beta',
      added: [{ id: 'n2', block: 'gains', text: 'One card' }],
      edited: [{ id: 'n1', block: 'pains', text: 'b', before: 'a', after: 'b', fields: ['text'] }],
      moved: [{ id: 'n3', block: 'jobs', text: 'm', from: { block: 'pains' }, to: { block: 'jobs' } }],
      votes: [{ id: 'n1', block: 'pains', text: 'b', voter: 'u', before: null, after: 1 }],
    }
    expect(describeGroup(g)).toEqual(['Added “One card”', 'Edited “a” → “b”', 'Moved “m” from pains to jobs', 'Voted on “b”'])
  })

  it('reads comments added and resolved', () => {
    const c = { id: 'c1', note: 'n1', text: 'which?', author_name: 'Gil', reply: false }
    const g: DiffGroup = {
      ...empty,
      org: 'gamma',
      name: 'Gamma',
      comments_added: [c, { ...c, id: 'c2', text: 'the fast ones', reply: true }],
      comments_resolved: [c],
    }
    expect(describeGroup(g)).toEqual(['Commented “which?”', 'Replied “the fast ones”', 'Resolved the comment “which?”'])
  })

  it('names files as the server does', () => {
    expect(exportFilename('Our workshop: round 1', 'pdf')).toBe('Our-workshop-round-1.pdf')
    expect(exportFilename('Rounds', 'png', 3)).toBe('Rounds-v3.png')
    expect(exportFilename('???', 'csv')).toBe('canvas.csv')
  })
})
