// A linear, screen-reader-friendly view of the canvas: block → notes with author and
// organization. Spatial placement means little without sight; this is the same content.
import { h } from './dom'
import type { BlockInfo, NoteInfo, OrgView } from './model'
import { orgLabel } from './model'

export interface OutlineBlock {
  id: string
  title: string
  locked: boolean
  notes: Array<{ id: string; text: string; author: string; org: string }>
}

export function buildOutline(
  blocks: readonly BlockInfo[],
  notes: readonly NoteInfo[],
  orgs: ReadonlyMap<string, OrgView>,
): OutlineBlock[] {
  const byBlock = new Map<string, NoteInfo[]>()
  for (const n of notes) {
    const list = byBlock.get(n.block) ?? []
    list.push(n)
    byBlock.set(n.block, list)
  }
  const known = new Set(blocks.map((b) => b.id))
  const out: OutlineBlock[] = blocks.map((b) => ({
    id: b.id,
    title: b.title,
    locked: b.lockedBy !== '',
    notes: (byBlock.get(b.id) ?? []).map((n) => ({
      id: n.id,
      text: n.text,
      author: n.authorName || 'unknown author',
      org: orgLabel(orgs as Map<string, OrgView>, n.org).name,
    })),
  }))
  // Notes whose block vanished stay reachable rather than silently hidden.
  const orphans = notes.filter((n) => !known.has(n.block))
  if (orphans.length) {
    out.push({
      id: '',
      title: 'Notes without a block',
      locked: false,
      notes: orphans.map((n) => ({
        id: n.id,
        text: n.text,
        author: n.authorName || 'unknown author',
        org: orgLabel(orgs as Map<string, OrgView>, n.org).name,
      })),
    })
  }
  return out
}

export function renderOutline(host: HTMLElement, outline: readonly OutlineBlock[]): void {
  const list = h('ul', { class: 'outline-blocks' })
  for (const b of outline) {
    const notes = h('ul', { class: 'outline-notes' })
    for (const n of b.notes) {
      notes.append(
        h(
          'li',
          { 'data-note-id': n.id },
          h('span', { class: 'outline-text' }, n.text.trim() || '(empty note)'),
          ' — ',
          h('span', { class: 'outline-author' }, `${n.author}, ${n.org}`),
        ),
      )
    }
    if (!b.notes.length) notes.append(h('li', { class: 'outline-empty' }, 'No notes yet'))
    const count = b.notes.length === 1 ? '1 note' : `${b.notes.length} notes`
    list.append(
      h(
        'li',
        { 'data-block-id': b.id },
        h('h3', {}, `${b.title} (${count}${b.locked ? ', locked' : ''})`),
        notes,
      ),
    )
  }
  host.replaceChildren(h('h2', { id: 'outline-heading' }, 'Outline'), list)
}
