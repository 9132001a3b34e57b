import { describe, expect, it } from 'vitest'
import { NOTE_GAP, NOTE_W, blockAt, computeGeometry, sides, type Rect } from '../src/geometry'
import { buildLayout } from '../src/layout'
import type { BlockInfo, OrgView } from '../src/model'
import { nextSlot, packNotes, type PackItem } from '../src/packing'
import { explainRefusal, whyReadOnly } from '../src/why'

function block(id: string, section: string, kind: string, order: number, org = '', hint = 'a hint'): BlockInfo {
  return { id, title: id, hint, order, section, kind, org, lockedBy: '' }
}

const PROFILE = [block('customer-jobs', 'customer-profile', 'jobs', 0), block('pains', 'customer-profile', 'pains', 1), block('gains', 'customer-profile', 'gains', 2)]
const BMC = ['key-partners', 'key-activities', 'key-resources', 'value-propositions', 'customer-relationships', 'channels', 'customer-segments', 'cost-structure', 'revenue-streams'].map((k, i) =>
  block(k, 'bmc', k, i),
)

function maps(n: number): { blocks: BlockInfo[]; orgs: Map<string, OrgView> } {
  const blocks: BlockInfo[] = []
  const orgs = new Map<string, OrgView>()
  for (let i = 0; i < n; i++) {
    const org = `org${i}`
    orgs.set(org, { id: org, name: `Org ${i}`, color: '#2f6fdb', initials: 'O' + i })
    blocks.push(block(`${org}:products-services`, 'value-map', 'products', 10 + i * 3, org))
    blocks.push(block(`${org}:gain-creators`, 'value-map', 'creators', 11 + i * 3, org))
    blocks.push(block(`${org}:pain-relievers`, 'value-map', 'relievers', 12 + i * 3, org))
  }
  return { blocks, orgs }
}

function hints(blocks: readonly BlockInfo[]): Map<string, boolean> {
  return new Map(blocks.map((b) => [b.id, b.hint !== '']))
}

function overlaps(a: Rect, b: Rect): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
}

describe('computeGeometry', () => {
  it('never overlaps two blocks, and every notes area sits below its block title', () => {
    const { blocks, orgs } = maps(5)
    const all = [...BMC, ...PROFILE, ...blocks]
    const g = computeGeometry(buildLayout(all, orgs), new Map(), hints(all))
    const rects = [...g.blocks.values()]
    expect(rects).toHaveLength(all.length)
    for (let i = 0; i < rects.length; i++) {
      for (let j = i + 1; j < rects.length; j++) expect(overlaps(rects[i]!.rect, rects[j]!.rect), `${rects[i]!.id} × ${rects[j]!.id}`).toBe(false)
      const b = rects[i]!
      expect(b.area.y).toBeGreaterThan(b.rect.y + 30)
      expect(b.area.y + b.area.h).toBeLessThanOrEqual(b.rect.y + b.rect.h)
    }
  })

  it.each([2, 3, 4, 6, 8])('puts the customer profile central and largest with %i partners', (n) => {
    const { blocks, orgs } = maps(n)
    const all = [...PROFILE, ...blocks]
    const g = computeGeometry(buildLayout(all, orgs), new Map(), hints(all))
    const profile = g.panels.find((p) => p.type === 'customer-profile')!
    const mapShapes = g.panels.filter((p) => p.type === 'value-map')
    expect(mapShapes).toHaveLength(n)
    for (const m of mapShapes) {
      expect(profile.shape.w).toBeGreaterThanOrEqual(m.shape.w)
      expect(profile.shape.h).toBeGreaterThanOrEqual(m.shape.h)
    }
    const cx = profile.rect.x + profile.rect.w / 2
    expect(Math.abs(cx - g.width / 2)).toBeLessThan(1)
    const left = mapShapes.filter((m) => m.rect.x + m.rect.w <= profile.rect.x)
    const right = mapShapes.filter((m) => m.rect.x >= profile.rect.x + profile.rect.w)
    expect(left.length).toBe(sides(n).left)
    expect(right.length).toBe(sides(n).right)
    // Vertically, too: the profile's middle is the canvas's middle.
    expect(Math.abs(profile.rect.y + profile.rect.h / 2 - g.height / 2)).toBeLessThan(1)
  })

  it('grows a full block (and its row), never the others out of their places', () => {
    const layout = buildLayout(BMC, new Map())
    const before = computeGeometry(layout, new Map(), hints(BMC))
    const after = computeGeometry(layout, new Map([['key-activities', 2000]]), hints(BMC))
    const ka = after.blocks.get('key-activities')!
    expect(ka.area.h).toBeGreaterThanOrEqual(2000)
    expect(ka.baseH).toBe(before.blocks.get('key-activities')!.baseH)
    // Key Resources moved down below it; Cost Structure is still below everything above.
    expect(after.blocks.get('key-resources')!.rect.y).toBeGreaterThanOrEqual(ka.rect.y + ka.rect.h)
    expect(after.blocks.get('cost-structure')!.rect.y).toBeGreaterThanOrEqual(after.blocks.get('key-partners')!.rect.y + after.blocks.get('key-partners')!.rect.h)
  })

  it('finds the block under a canvas point by geometry', () => {
    const g = computeGeometry(buildLayout(BMC, new Map()), new Map(), hints(BMC))
    const ch = g.blocks.get('channels')!
    expect(blockAt(g, ch.rect.x + 5, ch.rect.y + ch.rect.h - 5)?.id).toBe('channels')
    expect(blockAt(g, -10, -10)).toBeUndefined()
  })
})

describe('packNotes', () => {
  const item = (id: string, x: number, y: number, h = 76, createdAt = 0): PackItem => ({ id, x, y, h, createdAt })

  it('keeps a free placement and moves colliding notes to the nearest free place', () => {
    const p = packNotes([item('a', 0, 0, 76, 1), item('b', 0, 0, 76, 2), item('c', 0.5, 0.5, 76, 3)], 300, 300)
    const boxes = [...p.pos].map(([id, q]) => ({ id, x: q.left, y: q.top, w: NOTE_W, h: 76 }))
    expect(p.pos.get('a')).toEqual({ left: 0, top: 0 })
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) expect(overlaps(boxes[i]!, boxes[j]!)).toBe(false)
  })

  it('packs 60 notes at the same spot without overlap, growing downwards, the same for any input order', () => {
    const items = Array.from({ length: 60 }, (_, i) => item(`n${i}`, 0, 0, 76 + (i % 5) * 16, i))
    const a = packNotes(items, 304, 250)
    const b = packNotes([...items].reverse(), 304, 250)
    expect([...a.pos].sort()).toEqual([...b.pos].sort())
    const boxes = items.map((it) => ({ x: a.pos.get(it.id)!.left, y: a.pos.get(it.id)!.top, w: NOTE_W + NOTE_GAP - 1, h: it.h + NOTE_GAP - 1 }))
    for (let i = 0; i < boxes.length; i++) {
      expect(boxes[i]!.x + NOTE_W).toBeLessThanOrEqual(304)
      for (let j = i + 1; j < boxes.length; j++) expect(overlaps(boxes[i]!, boxes[j]!)).toBe(false)
    }
    expect(a.height).toBeGreaterThan(250)
  })

  it('offers the first free slot in reading order for a new note', () => {
    const packed = packNotes([item('a', 0, 0)], 304, 250)
    const s = nextSlot(packed, new Map([['a', 76]]), 304, 250, 76)
    expect(s.y).toBe(0)
    expect(s.x).toBeGreaterThan(0.5)
  })
})

describe('say why', () => {
  const note = { id: 'n', block: 'pains', text: 't', org: 'acme', author: 'a', authorName: 'Alice', color: '#000000', x: 0, y: 0, createdAt: 0 }
  const acme = { id: 'acme', name: 'Acme Corp', color: '#2f6fdb', initials: 'AC' }
  it('names the owner and the reason', () => {
    expect(whyReadOnly(note, { me: { role: 'editor', org: 'beta' }, protectNotes: true, org: acme, block: undefined })).toEqual({
      who: 'Alice · Acme Corp',
      why: 'Protected by Acme Corp: on this canvas each organization changes only its own notes.',
    })
    expect(whyReadOnly(note, { me: { role: 'viewer', org: 'acme' }, protectNotes: false, org: acme, block: undefined })?.why).toMatch(/viewer/)
    const locked = { ...block('pains', 'customer-profile', 'pains', 0), title: 'Pains', lockedBy: 'fay' }
    expect(whyReadOnly(note, { me: { role: 'editor', org: 'acme' }, protectNotes: true, org: acme, block: locked })?.why).toBe('Pains is locked by the facilitator.')
    expect(whyReadOnly(note, { me: { role: 'editor', org: 'acme' }, protectNotes: true, org: acme, block: undefined })).toBeNull()
    expect(whyReadOnly(note, { me: { role: 'facilitator', org: '' }, protectNotes: true, org: acme, block: locked })).toBeNull()
  })
  it("gives the server's refusals the same words", () => {
    expect(explainRefusal('block channels is locked', (id) => (id === 'channels' ? 'Channels' : undefined))).toBe(
      'Your change was not accepted and has been undone. Channels is locked by the facilitator.',
    )
    expect(explainRefusal('this note belongs to another organization', () => undefined)).toMatch(/protected by its organization/)
    expect(explainRefusal('viewers cannot change the canvas', () => undefined)).toMatch(/viewer/)
    expect(explainRefusal('', () => undefined)).toBe('Your change was not accepted: permission denied')
  })
})

describe('packNotes under a flood', () => {
  it('lays out 3,000 notes in one block without overlap (flow layout past FREE_PLACEMENT_MAX)', () => {
    const items: PackItem[] = Array.from({ length: 3000 }, (_, i) => ({ id: `n${i}`, x: 0, y: 0, h: 76 + (i % 4) * 16, createdAt: i }))
    const p = packNotes(items, 304, 250)
    const byCol = new Map<number, Array<{ top: number; h: number }>>()
    for (const it of items) {
      const q = p.pos.get(it.id)!
      const list = byCol.get(q.left) ?? []
      list.push({ top: q.top, h: it.h })
      byCol.set(q.left, list)
    }
    expect(byCol.size).toBe(2)
    for (const list of byCol.values()) {
      list.sort((a, b) => a.top - b.top)
      for (let i = 1; i < list.length; i++) expect(list[i]!.top).toBeGreaterThanOrEqual(list[i - 1]!.top + list[i - 1]!.h + NOTE_GAP)
    }
  })
})
