import { describe, expect, it } from 'vitest'
import { contrastRatio, initials, parseHex, safeColor, textColorOn, tint } from '../src/colors'

// The server's palette (server/canvas/templates.py ORG_PALETTE).
const PALETTE = ['#2f6fdb', '#d9480f', '#2b8a3e', '#ae3ec9', '#e67700', '#0c8599', '#c2255c']

describe('initials', () => {
  it('follows the server rule', () => {
    expect(initials('Acme Corp')).toBe('AC')
    expect(initials('beta')).toBe('BE')
    expect(initials('Red-Cross International')).toBe('RC')
    expect(initials('  ')).toBe('?')
    expect(initials('x')).toBe('X')
  })
})

describe('contrast', () => {
  it('picks badge text with at least WCAG AA large-text contrast on every palette colour', () => {
    for (const c of PALETTE) expect(contrastRatio(c, textColorOn(c))).toBeGreaterThanOrEqual(3)
  })

  it('picks black on light and white on dark colours', () => {
    expect(textColorOn('#ffff00')).toBe('#000000')
    expect(textColorOn('#1a1a6e')).toBe('#ffffff')
  })

  it('keeps dark ink readable on the tinted note body', () => {
    for (const c of PALETTE) expect(contrastRatio(tint(c, 0.82), '#1d2327')).toBeGreaterThanOrEqual(7)
  })
})

describe('parsing', () => {
  it('accepts short and long hex and rejects junk', () => {
    expect(parseHex('#fff')).toEqual([255, 255, 255])
    expect(parseHex('2f6fdb')).toEqual([47, 111, 219])
    expect(parseHex('red')).toBeNull()
    expect(safeColor('javascript:alert(1)')).toBe('#495057')
    expect(safeColor('abcdef')).toBe('#abcdef')
  })
})
