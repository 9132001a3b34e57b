// Maps the doc's blocks onto the canvases people know. Placement is driven by the
// block's `section` and `kind` (not its id), so partner value maps and blocks written
// by other tools land in the right cell; anything unknown goes to an "Other" panel
// rather than disappearing.
import type { BlockInfo, OrgView } from './model'

export interface Cell {
  block: BlockInfo
  /** CSS grid-area name inside the panel. */
  area: string
}

export type Panel =
  | { type: 'bmc'; key: string; cells: Cell[] }
  | { type: 'value-map'; key: string; org: string; title: string; cells: Cell[] }
  | { type: 'customer-profile'; key: string; title: string; cells: Cell[] }
  | { type: 'other'; key: string; title: string; cells: Cell[] }

/** Classic Business Model Canvas: five columns on top, costs and revenues below. */
export const BMC_AREAS: Readonly<Record<string, string>> = {
  'key-partners': 'kp',
  'key-activities': 'ka',
  'key-resources': 'kr',
  'value-propositions': 'vp',
  'customer-relationships': 'cr',
  channels: 'ch',
  'customer-segments': 'cs',
  'cost-structure': 'co',
  'revenue-streams': 'rv',
}

export const BMC_TEMPLATE_AREAS = [
  '"kp kp ka ka vp vp cr cr cs cs"',
  '"kp kp kr kr vp vp ch ch cs cs"',
  '"co co co co co rv rv rv rv rv"',
].join(' ')

/** Value map square: products on the left, gain creators above pain relievers on the right. */
export const VALUE_MAP_AREAS: Readonly<Record<string, string>> = {
  products: 'ps',
  creators: 'gc',
  relievers: 'pr',
}
export const VALUE_MAP_TEMPLATE_AREAS = '"ps gc" "ps pr"'

/** Customer profile circle: gains above pains on the left, jobs on the right. */
export const PROFILE_AREAS: Readonly<Record<string, string>> = {
  gains: 'ga',
  pains: 'pa',
  jobs: 'jo',
}
export const PROFILE_TEMPLATE_AREAS = '"ga jo" "pa jo"'

function byOrder(a: BlockInfo, b: BlockInfo): number {
  return a.order - b.order || a.id.localeCompare(b.id)
}

export function buildLayout(blocks: readonly BlockInfo[], orgs: ReadonlyMap<string, OrgView>): Panel[] {
  const sorted = [...blocks].sort(byOrder)
  const bmc: Cell[] = []
  const profile: Cell[] = []
  const maps = new Map<string, Cell[]>()
  const other: Cell[] = []
  const used = new Set<string>()

  const claim = (cells: Cell[], b: BlockInfo, area: string | undefined): boolean => {
    // A second block with the same kind in one panel would overlap its twin: send it to "Other".
    const key = `${cells === bmc ? 'bmc' : cells === profile ? 'cp' : 'vm:' + b.org}:${area}`
    if (area === undefined || used.has(key)) return false
    used.add(key)
    cells.push({ block: b, area })
    return true
  }

  for (const b of sorted) {
    let placed = false
    if (b.section === 'bmc') placed = claim(bmc, b, BMC_AREAS[b.kind])
    else if (b.section === 'customer-profile') placed = claim(profile, b, PROFILE_AREAS[b.kind])
    else if (b.section === 'value-map') {
      let cells = maps.get(b.org)
      if (!cells) {
        cells = []
        maps.set(b.org, cells)
      }
      placed = claim(cells, b, VALUE_MAP_AREAS[b.kind])
    }
    if (!placed) other.push({ block: b, area: '' })
  }

  const panels: Panel[] = []
  if (bmc.length) panels.push({ type: 'bmc', key: 'bmc', cells: bmc })
  // Value maps left of the profile, as on the Value Proposition Canvas; several partners side by side.
  for (const [org, cells] of maps) {
    if (!cells.length) continue
    const name = org ? (orgs.get(org)?.name ?? org) : ''
    panels.push({
      type: 'value-map',
      key: `vm:${org}`,
      org,
      title: name ? `Value Map — ${name}` : 'Value Map',
      cells,
    })
  }
  if (profile.length) panels.push({ type: 'customer-profile', key: 'cp', title: 'Customer Profile', cells: profile })
  if (other.length) panels.push({ type: 'other', key: 'other', title: 'Other', cells: other })
  return panels
}

/** Blocks in the order a keyboard user meets them (panel by panel, reading order). */
export function readingOrder(panels: readonly Panel[]): BlockInfo[] {
  const rank = (area: string, order: readonly string[]): number => {
    const i = order.indexOf(area)
    return i < 0 ? order.length : i
  }
  const out: BlockInfo[] = []
  for (const p of panels) {
    const order =
      p.type === 'bmc'
        ? ['kp', 'ka', 'kr', 'vp', 'cr', 'ch', 'cs', 'co', 'rv']
        : p.type === 'value-map'
          ? ['ps', 'gc', 'pr']
          : p.type === 'customer-profile'
            ? ['jo', 'ga', 'pa']
            : []
    const cells = [...p.cells].sort((a, b) => rank(a.area, order) - rank(b.area, order) || byOrder(a.block, b.block))
    for (const c of cells) out.push(c.block)
  }
  return out
}

/** A signature of everything that changes the board's structure (not locks or notes). */
export function layoutSignature(blocks: readonly BlockInfo[], orgs: ReadonlyMap<string, OrgView>): string {
  const parts = blocks.map((b) => [b.id, b.title, b.hint, b.order, b.section, b.kind, b.org].join('\u0001'))
  const orgParts = [...orgs.values()].map((o) => [o.id, o.name, o.color].join('\u0001'))
  return parts.join('\u0002') + '\u0003' + orgParts.join('\u0002')
}
