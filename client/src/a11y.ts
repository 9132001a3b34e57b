// Accessible names and the polite live region. Labels are built here (pure) so the
// board and the outline say the same thing and tests can pin the wording.
import type { BlockInfo, NoteInfo, OrgView } from './model'

export function excerpt(text: string, max = 80): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  if (!flat) return 'empty note'
  return flat.length > max ? flat.slice(0, max - 1) + '…' : flat
}

export function noteLabel(note: NoteInfo, blockTitle: string, org: OrgView, editors: readonly string[] = []): string {
  const by = note.authorName || 'unknown author'
  const parts = [`Note in ${blockTitle}: ${excerpt(note.text)}`, `by ${by}, ${org.name}`]
  if (editors.length) parts.push(`being edited by ${editors.join(', ')}`)
  return parts.join('. ')
}

export function blockLabel(block: BlockInfo, noteCount: number): string {
  const notes = noteCount === 1 ? '1 note' : `${noteCount} notes`
  const lock = block.lockedBy ? ', locked' : ''
  return `${block.title} block, ${notes}${lock}`
}

const MUTE_KEY = 'cocanvas:announce-presence'

/**
 * One polite live region. Messages are queued a tick apart: screen readers drop a
 * message when the region's text is replaced in the same frame.
 */
export class Announcer {
  private queue: string[] = []
  private timer: ReturnType<typeof setTimeout> | null = null
  presenceEnabled: boolean

  constructor(private readonly region: HTMLElement) {
    region.setAttribute('aria-live', 'polite')
    region.setAttribute('aria-atomic', 'true')
    let stored: string | null = null
    try {
      stored = localStorage.getItem(MUTE_KEY)
    } catch {
      stored = null
    }
    this.presenceEnabled = stored !== 'off'
  }

  setPresenceEnabled(on: boolean): void {
    this.presenceEnabled = on
    try {
      localStorage.setItem(MUTE_KEY, on ? 'on' : 'off')
    } catch {
      // storage unavailable: the choice lasts for this page view
    }
  }

  /** Presence news respects the mute checkbox; results of one's own actions always speak. */
  presence(message: string): void {
    if (this.presenceEnabled) this.say(message)
  }

  say(message: string): void {
    this.queue.push(message)
    if (!this.timer) this.flush()
  }

  private flush(): void {
    const next = this.queue.shift()
    if (next === undefined) {
      this.timer = null
      return
    }
    this.region.textContent = next
    this.timer = setTimeout(() => this.flush(), 700)
  }
}
