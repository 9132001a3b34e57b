// "Say why": the words for a note one may not change, and the same words for an edit the
// server refused (and already rolled back). Pure functions for the words, one small
// popover to show them next to the note.
import { h } from './dom'
import type { BlockInfo, NoteInfo, OrgView } from './model'
import type { Claims } from './session'

export interface WhyContext {
  me: Pick<Claims, 'role' | 'org'>
  protectNotes: boolean
  org: OrgView
  block: BlockInfo | undefined
  /** The workshop stage says frozen (server/workshop/stage.py): read-only for everyone. */
  frozen?: boolean
}

const VIEWER = 'You joined as a viewer: you can follow along but not change the canvas.'
const PROTECTED = (org: string): string => `Protected by ${org}: on this canvas each organization changes only its own notes.`
export const FROZEN = 'The facilitator froze the canvas: it is read-only for everyone until it is unfrozen.'
const LOCKED = (block: string): string => `${block} is locked by the facilitator.`

/** Whose the note is, and why this person may not change it; null when they may. */
export function whyReadOnly(note: NoteInfo, ctx: WhyContext): { who: string; why: string } | null {
  const who = `${note.authorName || 'Someone'} · ${ctx.org.name}`
  if (ctx.me.role !== 'editor' && ctx.me.role !== 'facilitator') return { who, why: VIEWER }
  if (ctx.frozen) return { who, why: FROZEN }
  if (ctx.me.role === 'facilitator') return null
  if (ctx.block?.lockedBy) return { who, why: LOCKED(ctx.block.title) }
  if (ctx.protectNotes && note.org !== ctx.me.org) return { who, why: PROTECTED(ctx.org.name) }
  return null
}

/**
 * The server's refusal reasons (server/policy.py) in the words the board uses. The server
 * has already sent the change that undoes the refused part, so this only explains.
 */
export function explainRefusal(reason: string, blockTitle: (id: string) => string | undefined): string {
  const r = reason.trim()
  const say = (words: string): string => `Your change was not accepted and has been undone. ${words}`
  if (r === 'viewers cannot change the canvas') return say(VIEWER)
  if (r.startsWith('the canvas is frozen')) return say(FROZEN)
  if (r === 'this note belongs to another organization') return say('That note is protected by its organization: on this canvas each organization changes only its own notes.')
  const locked = /^block (.+) is locked$/.exec(r)
  if (locked?.[1]) return say(LOCKED(blockTitle(locked[1]) ?? locked[1]))
  return `Your change was not accepted: ${r || 'permission denied'}`
}

let pop: HTMLElement | null = null
let popTimer: ReturnType<typeof setTimeout> | null = null

/** A small bubble under `anchor` saying whose the note is and why; the next click elsewhere closes it. */
export function showWhy(anchor: HTMLElement, who: string, why: string): HTMLElement {
  if (!pop) {
    pop = h('div', { class: 'why-pop', role: 'status', 'aria-live': 'polite' })
    document.body.append(pop)
    document.addEventListener(
      'pointerdown',
      (e) => {
        if (pop && !pop.hidden && !(e.target as HTMLElement).closest('.why-pop, .note.readonly')) pop.hidden = true
      },
      true,
    )
  }
  const el = pop
  el.replaceChildren(h('strong', { class: 'why-who' }, who), h('span', { class: 'why-text' }, why))
  el.hidden = false
  const r = anchor.getBoundingClientRect()
  const w = Math.min(320, window.innerWidth - 16)
  el.style.width = `${w}px`
  el.style.left = `${Math.max(8, Math.min(window.innerWidth - w - 8, r.left))}px`
  const below = r.bottom + 8
  el.style.top = `${below + 90 > window.innerHeight ? Math.max(8, r.top - 98) : below}px`
  if (popTimer) clearTimeout(popTimer)
  popTimer = setTimeout(() => (el.hidden = true), 8000)
  return el
}
