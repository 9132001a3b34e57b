// Inline SVG icons: emoji glyphs are missing on many Linux desktops (and in CI browsers).
const NS = 'http://www.w3.org/2000/svg'

function svg(paths: string[], label?: string): SVGSVGElement {
  const el = document.createElementNS(NS, 'svg')
  el.setAttribute('viewBox', '0 0 16 16')
  el.setAttribute('width', '14')
  el.setAttribute('height', '14')
  el.setAttribute('class', 'icon')
  el.setAttribute('fill', 'none')
  el.setAttribute('stroke', 'currentColor')
  el.setAttribute('stroke-width', '1.6')
  el.setAttribute('stroke-linecap', 'round')
  if (label) {
    el.setAttribute('role', 'img')
    el.setAttribute('aria-label', label)
  } else {
    el.setAttribute('aria-hidden', 'true')
  }
  for (const d of paths) {
    const p = document.createElementNS(NS, 'path')
    p.setAttribute('d', d)
    el.append(p)
  }
  return el
}

export function lockIcon(locked: boolean): SVGSVGElement {
  const body = 'M3.5 7.5h9v6.5h-9z'
  return svg(locked ? [body, 'M5.5 7.5V5a2.5 2.5 0 0 1 5 0v2.5'] : [body, 'M5.5 7.5V5a2.5 2.5 0 0 1 5 0'])
}
