// Organization colours come from users, so text on them must be picked for contrast,
// and a colour is never the only cue: initials travel with it (see noteview.ts).

export const NEUTRAL_COLOR = '#495057'

export function parseHex(color: string): [number, number, number] | null {
  const m = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color.trim())
  if (!m || !m[1]) return null
  let hex = m[1]
  if (hex.length === 3) hex = hex.replace(/./g, (c) => c + c)
  const n = parseInt(hex, 16)
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255]
}

function channel(c: number): number {
  const s = c / 255
  return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4
}

/** WCAG 2.x relative luminance. */
export function luminance(color: string): number {
  const rgb = parseHex(color) ?? parseHex(NEUTRAL_COLOR)!
  return 0.2126 * channel(rgb[0]) + 0.7152 * channel(rgb[1]) + 0.0722 * channel(rgb[2])
}

export function contrastRatio(a: string, b: string): number {
  const la = luminance(a)
  const lb = luminance(b)
  return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05)
}

/** Black or white, whichever reads better on `bg`. */
export function textColorOn(bg: string): '#000000' | '#ffffff' {
  return contrastRatio(bg, '#000000') >= contrastRatio(bg, '#ffffff') ? '#000000' : '#ffffff'
}

/** Mixes `color` towards white; used for the pale note body so the text stays dark. */
export function tint(color: string, amount: number): string {
  const rgb = parseHex(color) ?? parseHex(NEUTRAL_COLOR)!
  const mix = rgb.map((c) => Math.round(c + (255 - c) * amount))
  return '#' + mix.map((c) => c.toString(16).padStart(2, '0')).join('')
}

export function safeColor(color: unknown): string {
  return typeof color === 'string' && parseHex(color) ? (color.startsWith('#') ? color : '#' + color) : NEUTRAL_COLOR
}

/** Same rule as the server's `initials()` so labels match when an org map lacks them. */
export function initials(name: string): string {
  const words = name.split(/[\s\-_.]+/).filter((w) => w.length > 0)
  if (words.length === 0) return '?'
  if (words.length === 1) return words[0]!.slice(0, 2).toUpperCase()
  return (words[0]![0]! + words[1]![0]!).toUpperCase()
}
