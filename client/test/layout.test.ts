import { describe, expect, it } from 'vitest'
import { BMC_AREAS, buildLayout, layoutSignature, readingOrder } from '../src/layout'
import type { BlockInfo, OrgView } from '../src/model'

function block(id: string, section: string, kind: string, order: number, org = ''): BlockInfo {
  return { id, title: id, hint: '', order, section, kind, org, lockedBy: '' }
}

const BMC = [
  'key-partners',
  'key-activities',
  'key-resources',
  'value-propositions',
  'customer-relationships',
  'channels',
  'customer-segments',
  'cost-structure',
  'revenue-streams',
].map((k, i) => block(k, 'bmc', k, i))

const PROFILE = [block('customer-jobs', 'customer-profile', 'jobs', 0), block('pains', 'customer-profile', 'pains', 1), block('gains', 'customer-profile', 'gains', 2)]

function valueMap(org: string, start: number): BlockInfo[] {
  const pre = org ? `${org}:` : ''
  return [
    block(`${pre}products-services`, 'value-map', 'products', start, org),
    block(`${pre}pain-relievers`, 'value-map', 'relievers', start + 1, org),
    block(`${pre}gain-creators`, 'value-map', 'creators', start + 2, org),
  ]
}

const orgs = new Map<string, OrgView>([
  ['acme', { id: 'acme', name: 'Acme', color: '#2f6fdb', initials: 'AC' }],
  ['beta', { id: 'beta', name: 'Beta', color: '#d9480f', initials: 'BE' }],
])

describe('buildLayout', () => {
  it('puts the nine BMC blocks in the classic grid areas', () => {
    const panels = buildLayout(BMC, orgs)
    expect(panels).toHaveLength(1)
    const p = panels[0]!
    expect(p.type).toBe('bmc')
    const areas = Object.fromEntries(p.cells.map((c) => [c.block.kind, c.area]))
    expect(areas).toEqual(BMC_AREAS)
  })

  it('lays out the Value Proposition Canvas as value map (left) then customer profile (right)', () => {
    const panels = buildLayout([...PROFILE, ...valueMap('', 3)], orgs)
    expect(panels.map((p) => p.type)).toEqual(['value-map', 'customer-profile'])
    const vm = Object.fromEntries(panels[0]!.cells.map((c) => [c.block.kind, c.area]))
    expect(vm).toEqual({ products: 'ps', relievers: 'pr', creators: 'gc' })
    const cp = Object.fromEntries(panels[1]!.cells.map((c) => [c.block.kind, c.area]))
    expect(cp).toEqual({ jobs: 'jo', pains: 'pa', gains: 'ga' })
  })

  it('gives each partner organization its own value map, named after the org', () => {
    const panels = buildLayout([...PROFILE, ...valueMap('acme', 3), ...valueMap('beta', 6)], orgs)
    expect(panels.map((p) => p.type)).toEqual(['value-map', 'value-map', 'customer-profile'])
    expect(panels.map((p) => ('title' in p ? p.title : ''))).toEqual(['Value Map — Acme', 'Value Map — Beta', 'Customer Profile'])
    expect(panels[1]!.cells.every((c) => c.block.org === 'beta')).toBe(true)
  })

  it('keeps unknown or duplicate blocks visible in an "Other" panel', () => {
    const odd = block('parking-lot', 'misc', 'whatever', 20)
    const dup = block('key-partners-2', 'bmc', 'key-partners', 21)
    const panels = buildLayout([...BMC, odd, dup], orgs)
    const other = panels.find((p) => p.type === 'other')
    expect(other?.cells.map((c) => c.block.id)).toEqual(['parking-lot', 'key-partners-2'])
  })

  it('orders blocks for keyboard users in reading order, not doc order', () => {
    const shuffled = [...BMC].reverse().map((b, i) => ({ ...b, order: i }))
    const ids = readingOrder(buildLayout(shuffled, orgs)).map((b) => b.id)
    expect(ids).toEqual([
      'key-partners',
      'key-activities',
      'key-resources',
      'value-propositions',
      'customer-relationships',
      'channels',
      'customer-segments',
      'cost-structure',
      'revenue-streams',
    ])
  })

  it('changes its signature when structure changes but not for locks', () => {
    const sig = layoutSignature(BMC, orgs)
    expect(layoutSignature(BMC.map((b) => ({ ...b, lockedBy: 'u1' })), orgs)).toBe(sig)
    expect(layoutSignature(BMC.slice(1), orgs)).not.toBe(sig)
  })
})
