// The workshop panel in the sidebar: timer, dot voting and results, comments, follow and
// gather, and the facilitator's console. Reads the document's workshop roots (rounds, timers,
// stage, comments), which the server writes; changes go over HTTP, except comments, which are
// written into the document and stamped by the server.
//
// It touches the board only through data attributes on `.note[data-note-id]` and
// `.block[data-block-id]` (dots, comment counts, spotlight) and through the page's scroll
// position (the viewport that "bring everyone to me" moves), so the board can change under it.
import * as Y from 'yjs'
import type { Awareness } from 'y-protocols/awareness'
import { authorOf } from '../attribution'
import { h, setAttr, setText } from '../dom'
import { FrameScheduler } from '../frame'
import type { Claims } from '../session'
import { toast } from '../toast'
import { WorkshopApi } from './api'
import { ServerClock, formatRemaining, remainingMs, type TimerDoc } from './clock'
import './workshop.css'

interface RoundDoc {
  title?: string
  blocks?: string[]
  dots?: number
  per_note?: number
  anonymous?: boolean
  visibility?: string
  status?: string
  opened_at?: number
  voters?: number
  tally?: Tally
  live?: Tally
}

interface TallyRow {
  place: number
  note: string
  total: number
  by_org: Record<string, number>
  orgs: number
  voters?: Array<{ name: string; dots: number }>
}

interface Tally {
  ranking: TallyRow[]
  voters: number
  shared: string[]
  single_org: Record<string, string>
  org_names: Record<string, string>
}

interface CommentDoc {
  note?: string
  parent?: string
  text?: string
  resolved?: boolean
  author?: string
  author_name?: string
  org?: string
  created_at?: number
}

/** A view of the canvas: canvas units on the zoomable board (x, y, w, h), or, without a board,
 * the page's scroll position (x, y). */
interface Viewport {
  x: number
  y: number
  w?: number
  h?: number
  zoom?: number
}

/** What the panel needs of the board (board.ts): its view, and where a note's badges go. */
export interface BoardHooks {
  visible(): { x: number; y: number; w: number; h: number }
  show(rect: { x: number; y: number; w: number; h: number }): void
  /** Calls back on every view change, saying whether the person moved it themselves. */
  onViewChange(cb: (byUser: boolean) => void): () => void
  decorations(noteId: string): HTMLElement | undefined
}

interface ConsolePerson {
  user_id: string
  name: string
  org_name: string
  role: string
  online: boolean
  last_seen: number | null
  removed: boolean
}

const NO_TIMER = 'No timer running'

function plain<T>(m: Y.Map<unknown>): Record<string, T> {
  return m.toJSON() as Record<string, T>
}

function noteText(doc: Y.Doc, id: string): string {
  const n = doc.getMap('notes').get(id)
  const t = n instanceof Y.Map ? n.get('text') : undefined
  const s = t instanceof Y.Text ? t.toString() : typeof t === 'string' ? t : ''
  return s.trim() || '(empty note)'
}

function section(id: string, title: string, ...body: Array<Node | null>): HTMLElement {
  return h('section', { class: 'panel-side workshop', id, 'aria-labelledby': `${id}-h` }, h('h2', { id: `${id}-h` }, title), ...body)
}

function button(label: string, onClick: () => void, attrs: Record<string, string> = {}): HTMLButtonElement {
  const b = h('button', { type: 'button', class: 'btn btn-small', ...attrs }, label)
  b.addEventListener('click', onClick)
  return b
}

export class WorkshopPanel {
  readonly el: HTMLElement
  private readonly api: WorkshopApi
  private readonly clock = new ServerClock()
  private readonly facilitator: boolean
  private readonly rounds: Y.Map<unknown>
  private readonly timers: Y.Map<unknown>
  private readonly stage: Y.Map<unknown>
  private readonly comments: Y.Map<unknown>
  private readonly cleanups: Array<() => void> = []
  /** Rendering scans every note (dots, comment counts, the note picker): once a frame, not once per edit. */
  private readonly frames = new FrameScheduler(() => this.render())
  private noteOptionsSig = ''
  private followSig = ''
  private awareness: Awareness | null = null
  // timer
  private readonly timerLabel = h('div', { class: 'muted', id: 'ws-timer-label' })
  private readonly timerRemaining = h('div', { class: 'ws-timer idle', id: 'ws-timer-remaining', 'aria-live': 'off' }, NO_TIMER)
  private readonly timerEnd = h('div', { class: 'ws-timer-end', id: 'ws-timer-end', role: 'status' })
  private readonly sound = h('input', { type: 'checkbox', id: 'ws-timer-sound' })
  private endedFor = ''
  // voting
  private readonly voteBody = h('div', { id: 'ws-vote-body' })
  private readonly results = h('div', { id: 'ws-results' })
  private myBallot: Record<string, number> = {}
  private ballotRound = ''
  // comments
  private readonly noteSelect = h('select', { id: 'ws-comment-note', 'aria-label': 'Note to discuss' })
  private readonly thread = h('ul', { class: 'ws-thread', id: 'ws-thread' })
  private readonly commentText = h('textarea', { id: 'ws-comment-text', rows: 2, 'aria-label': 'Your comment' })
  private replyTo: string | null = null
  private readonly replyHint = h('div', { class: 'muted', id: 'ws-reply-hint' })
  private seenComments = new Set<string>()
  // follow
  private readonly followStatus = h('div', { id: 'ws-follow-status', role: 'status' })
  private following: 'facilitator' | number | null = null
  private lastGatherSeq = 0
  private readonly spotlightSelect = h('select', { id: 'ws-spotlight', 'aria-label': 'Spotlight a block' })
  // console
  private readonly frozenBanner = h('div', { class: 'ws-frozen', id: 'ws-frozen', role: 'status', hidden: true })
  private readonly people = h('table', { class: 'ws-people', id: 'ws-people' })
  private readonly timeline = h('ul', { class: 'ws-timeline', id: 'ws-timeline' })
  private readonly inviteUses = h('ul', { class: 'ws-invites', id: 'ws-invite-uses' })
  private readonly orgFilter = h('select', { id: 'ws-timeline-org', 'aria-label': 'Timeline: organization' })

  constructor(
    private readonly doc: Y.Doc,
    canvasId: string,
    token: string,
    private readonly me: Claims,
    private readonly board: BoardHooks | null = null,
  ) {
    this.api = new WorkshopApi(canvasId, token)
    this.facilitator = me.role === 'facilitator'
    this.rounds = doc.getMap('rounds')
    this.timers = doc.getMap('timers')
    this.stage = doc.getMap('stage')
    this.comments = doc.getMap('comments')
    this.el = h('div', { class: 'workshop-panel', id: 'workshop' }, this.frozenBanner, this.timerSection(), this.voteSection(), this.commentSection(), this.followSection(), this.facilitator ? this.consoleSection() : null)

    const render = (): void => this.frames.request()
    this.cleanups.push(() => this.frames.cancel())
    for (const m of [this.rounds, this.timers, this.stage, this.comments, doc.getMap('notes'), doc.getMap('blocks')]) {
      m.observeDeep(render)
      this.cleanups.push(() => m.unobserveDeep(render))
    }
    const tick = setInterval(() => this.tick(), 250)
    this.cleanups.push(() => clearInterval(tick))
    void this.clock.sync().catch(() => undefined)
    const stop = (): void => this.stopFollowing('you moved the view')
    const onKey = (e: KeyboardEvent): void => {
      if (['PageDown', 'PageUp', 'Home', 'End', 'ArrowDown', 'ArrowUp'].includes(e.key) && !(e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement)) stop()
    }
    let viewTimer: ReturnType<typeof setTimeout> | null = null
    const publishView = (): void => {
      this.el.dataset.view = JSON.stringify(this.viewport())
      if (viewTimer) return
      viewTimer = setTimeout(() => {
        viewTimer = null
        this.awareness?.setLocalStateField('viewport', this.viewport())
      }, 150)
    }
    if (this.board) {
      // The board says who moved the view: the person (stop following) or a program (us).
      this.cleanups.push(
        this.board.onViewChange((byUser) => {
          if (byUser) stop()
          else this.keepFollowing()
          publishView()
        }),
      )
    } else {
      window.addEventListener('wheel', stop, { passive: true })
      window.addEventListener('touchmove', stop, { passive: true })
      window.addEventListener('keydown', onKey)
      window.addEventListener('scroll', publishView, { passive: true })
      this.cleanups.push(() => {
        window.removeEventListener('wheel', stop)
        window.removeEventListener('touchmove', stop)
        window.removeEventListener('keydown', onKey)
        window.removeEventListener('scroll', publishView)
      })
    }
    this.render()
    if (this.facilitator) {
      // Automatic refreshes stay quiet (a connection problem is already shown); Refresh tells.
      void this.refreshConsole(true)
      const every = setInterval(() => void this.refreshConsole(true), 10_000)
      this.cleanups.push(() => clearInterval(every))
    }
  }

  /** Presence: this tab's viewport and whom it follows travel with it; "follow <person>". */
  attachAwareness(awareness: Awareness): void {
    this.awareness = awareness
    awareness.setLocalStateField('viewport', this.viewport())
    const onChange = (): void => {
      if (typeof this.following === 'number') {
        const st = awareness.getStates().get(this.following) as { viewport?: Viewport } | undefined
        if (st?.viewport) this.moveTo(st.viewport)
      }
      this.renderFollowChoices()
    }
    awareness.on('change', onChange)
    this.cleanups.push(() => awareness.off('change', onChange))
  }

  destroy(): void {
    for (const c of this.cleanups) c()
  }

  private viewport(): Viewport {
    if (this.board) {
      const r = this.board.visible()
      return { x: r.x, y: r.y, w: r.w, h: r.h }
    }
    return { x: Math.round(window.scrollX), y: Math.round(window.scrollY), zoom: 1 }
  }

  /** What a followed view should show; the board re-fits by itself on resizes, so it is put
   * back after any change the person did not make, until they move the view themselves. */
  private followTarget: Viewport | null = null
  private reapplying = false

  private keepFollowing(): void {
    const t = this.followTarget
    if (this.following === null || !t || !this.board || this.reapplying || typeof t.w !== 'number') return
    const now = this.board.visible()
    const off = Math.abs(now.x - t.x) + Math.abs(now.y - t.y) + Math.abs(now.w - t.w)
    if (off <= 0.02 * t.w) return
    this.reapplying = true
    try {
      this.moveTo(t)
    } finally {
      this.reapplying = false
    }
  }

  private moveTo(v: Viewport): void {
    this.followTarget = v
    if (this.board && typeof v.w === 'number' && typeof v.h === 'number') this.board.show({ x: v.x, y: v.y, w: v.w, h: v.h })
    else window.scrollTo({ left: v.x, top: v.y, behavior: 'instant' as ScrollBehavior })
  }

  private async act(what: Promise<unknown>): Promise<void> {
    try {
      await what
    } catch (e) {
      toast(e instanceof Error ? e.message : String(e), 'error')
    }
  }

  // -- timer -------------------------------------------------------------------------------

  private timerSection(): HTMLElement {
    const minutes = h('input', { type: 'number', min: '0.1', step: '0.5', value: '5', id: 'ws-timer-minutes', 'aria-label': 'Minutes', class: 'ws-num' })
    const timer = (action: string, seconds?: number): void => {
      void this.act(this.api.call('PUT', `/timers/${encodeURIComponent(this.currentTimerId() ?? 'activity')}`, { action, ...(seconds === undefined ? {} : { seconds }) }))
    }
    const controls = this.facilitator
      ? h(
          'div',
          { class: 'row' },
          minutes,
          button('Start', () => void this.act(this.api.call('PUT', '/timers/activity', { action: 'start', seconds: Number(minutes.value) * 60, label: 'Activity' })), { id: 'ws-timer-start' }),
          button('Pause', () => timer('pause'), { id: 'ws-timer-pause' }),
          button('Resume', () => timer('resume'), { id: 'ws-timer-resume' }),
          button('+1 min', () => timer('add', 60), { id: 'ws-timer-add' }),
          button('Stop', () => timer('stop'), { id: 'ws-timer-stop' }),
        )
      : null
    return section('ws-timer-section', 'Timer', this.timerLabel, this.timerRemaining, this.timerEnd, controls, h('label', { class: 'check' }, this.sound, ' Sound at the end'))
  }

  private currentTimerId(): string | null {
    let best: string | null = null
    let at = -1
    for (const [id, t] of Object.entries(plain<TimerDoc & { updated_at?: number }>(this.timers))) {
      if ((t.updated_at ?? 0) > at) {
        at = t.updated_at ?? 0
        best = id
      }
    }
    return best
  }

  private tick(): void {
    const id = this.currentTimerId()
    const t = id ? (plain<TimerDoc>(this.timers)[id] ?? null) : null
    if (!id || !t) {
      // Idle says so in words (a bare dash read as a broken timer), and who starts one; the
      // facilitator has the Start control right below.
      this.timerRemaining.classList.add('idle')
      setText(this.timerRemaining, this.facilitator ? NO_TIMER : `${NO_TIMER}: the facilitator starts one`)
      setText(this.timerLabel, '')
      delete this.timerRemaining.dataset.remainingMs
      return
    }
    this.timerRemaining.classList.remove('idle')
    const left = remainingMs(t, this.clock.now())
    setText(this.timerLabel, `${t.label ?? id} · ${t.state ?? ''}`)
    setText(this.timerRemaining, formatRemaining(left))
    this.timerRemaining.dataset.remainingMs = String(left)
    const key = `${id}:${t.ends_at ?? ''}`
    if (t.state === 'running' && left === 0 && this.endedFor !== key) {
      this.endedFor = key
      setText(this.timerEnd, "Time's up")
      if (this.sound.checked) beep()
    } else if (left > 0) {
      setText(this.timerEnd, '')
    }
  }

  // -- voting ------------------------------------------------------------------------------

  private voteSection(): HTMLElement {
    let opener: HTMLElement | null = null
    if (this.facilitator) {
      const dots = h('input', { type: 'number', min: '1', max: '100', value: '3', id: 'ws-round-dots', class: 'ws-num', 'aria-label': 'Dots per participant' })
      const cap = h('input', { type: 'number', min: '1', max: '100', value: '2', id: 'ws-round-cap', class: 'ws-num', 'aria-label': 'At most per note' })
      const live = h('input', { type: 'checkbox', id: 'ws-round-live' })
      const named = h('input', { type: 'checkbox', id: 'ws-round-named' })
      opener = h(
        'div',
        { class: 'ws-open-round' },
        h('label', {}, 'Dots ', dots),
        h('label', {}, ' per note ≤ ', cap),
        h('label', { class: 'check' }, live, ' results live'),
        h('label', { class: 'check' }, named, ' named'),
        button('Open a round', () => void this.act(this.api.call('POST', '/rounds', { title: 'Vote', dots: Number(dots.value), per_note: Number(cap.value), visibility: live.checked ? 'live' : 'hidden', anonymous: !named.checked })), { id: 'ws-round-open' }),
      )
    }
    return section('ws-vote', 'Dot voting', opener, this.voteBody, h('h3', {}, 'Results'), this.results)
  }

  private latestRound(): [string, RoundDoc] | null {
    const all = Object.entries(plain<RoundDoc>(this.rounds)).sort((a, b) => (a[1].opened_at ?? 0) - (b[1].opened_at ?? 0))
    return all.at(-1) ?? null
  }

  private renderVote(): void {
    const latest = this.latestRound()
    if (!latest || latest[1].status !== 'open') {
      this.voteBody.replaceChildren(h('p', { class: 'muted' }, latest ? 'The round is closed.' : 'No vote round yet.'))
    } else {
      const [rid, r] = latest
      if (this.ballotRound !== rid) {
        this.ballotRound = rid
        this.myBallot = {}
        if (this.me.role !== 'viewer') {
          void this.api.call<{ dots: Record<string, number> }>('GET', `/rounds/${rid}/ballot`).then((b) => {
            this.myBallot = b.dots
            this.renderVote()
          }, () => undefined)
        }
      }
      const used = Object.values(this.myBallot).reduce((a, b) => a + b, 0)
      const notes = [...this.doc.getMap('notes').entries()].filter(([, n]) => n instanceof Y.Map && (!r.blocks?.length || r.blocks.includes(String(n.get('block'))))).map(([id]) => id).sort()
      const rows = notes.map((nid) => {
        const mine = this.myBallot[nid] ?? 0
        const change = (d: number): void => {
          const next = { ...this.myBallot, [nid]: Math.max(0, mine + d) }
          void this.act(
            this.api.call<{ dots: Record<string, number> }>('PUT', `/rounds/${rid}/ballot`, { dots: next }).then((b) => {
              this.myBallot = b.dots
              this.renderVote()
            }),
          )
        }
        return h(
          'li',
          { 'data-note-id': nid },
          h('span', { class: 'ws-note-text' }, noteText(this.doc, nid)),
          ' ',
          button('−', () => change(-1), { 'aria-label': `Take a dot back from ${noteText(this.doc, nid)}`, class: 'btn btn-small ws-dot-minus' }),
          h('span', { class: 'ws-mine' }, String(mine)),
          button('+', () => change(1), { 'aria-label': `Place a dot on ${noteText(this.doc, nid)}`, class: 'btn btn-small ws-dot-plus' }),
        )
      })
      const parts: Node[] = [
        h('p', {}, h('strong', {}, r.title ?? 'Vote'), ` · ${r.visibility === 'live' ? 'results live' : 'results hidden until the close'} · ${r.voters ?? 0} voted`),
      ]
      if (this.me.role === 'viewer') parts.push(h('p', { class: 'muted' }, 'Viewers do not vote.'))
      else parts.push(h('p', { id: 'ws-budget' }, `${used} of ${r.dots ?? 0} dots used (at most ${r.per_note ?? 1} per note)`), h('ul', { class: 'ws-ballot', id: 'ws-ballot' }, ...rows))
      if (this.facilitator) parts.push(button('Close the round and reveal', () => void this.act(this.api.call('POST', `/rounds/${rid}/close`)), { id: 'ws-round-close' }))
      this.voteBody.replaceChildren(...parts)
    }
    this.renderResults(latest)
  }

  private renderResults(latest: [string, RoundDoc] | null): void {
    const tally = latest ? (latest[1].tally ?? latest[1].live ?? null) : null
    if (!tally) {
      this.results.replaceChildren(h('p', { class: 'muted' }, 'Results appear when the round closes.'))
      return
    }
    const names = tally.org_names
    const rows = tally.ranking.map((row) =>
      h(
        'li',
        { 'data-note-id': row.note, 'data-total': String(row.total) },
        h('strong', {}, `${row.place}. ${noteText(this.doc, row.note)}`),
        ` — ${row.total} dot${row.total === 1 ? '' : 's'}: `,
        h(
          'span',
          { class: 'ws-by-org' },
          Object.entries(row.by_org)
            .map(([o, n]) => [names[o] ?? o, n] as const)
            .sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]))
            .map(([name, n]) => `${name} ${n}`)
            .join(', '),
        ),
        ' ',
        row.orgs >= 2 ? h('span', { class: 'tag' }, `shared by ${row.orgs}`) : h('span', { class: 'tag' }, `only ${names[Object.keys(row.by_org)[0] ?? ''] ?? ''}`),
        row.voters ? h('div', { class: 'muted' }, row.voters.map((v) => `${v.name} ${v.dots}`).join(', ')) : null,
      ),
    )
    this.results.replaceChildren(
      h('p', { class: 'muted' }, `${latest?.[1].tally ? 'Final' : 'So far'}: ${tally.voters} voted`),
      h('ul', { class: 'ws-ranking', id: 'ws-ranking' }, ...rows),
    )
  }

  // -- comments ----------------------------------------------------------------------------

  private commentSection(): HTMLElement {
    this.noteSelect.addEventListener('change', () => {
      this.replyTo = null
      this.renderComments()
    })
    const post = button(
      'Post',
      () => {
        const note = this.noteSelect.value
        const text = this.commentText.value.trim()
        if (!note || !text) return
        const id = `c-${crypto.randomUUID()}`
        // Complete as the server wants it (server/workshop/comments.py): the time by the server's
        // clock and resolved, so no correction follows; who wrote it is this tab's client id.
        const fields = { note, text, resolved: false, created_at: Math.round(this.clock.now()), ...(this.replyTo ? { parent: this.replyTo } : {}) }
        this.comments.set(id, new Y.Map<unknown>(Object.entries(fields)))
        this.seenComments.add(id)
        this.commentText.value = ''
        this.replyTo = null
        this.renderComments()
      },
      { id: 'ws-comment-post' },
    )
    return section('ws-comments', 'Comments', this.noteSelect, this.thread, this.replyHint, this.commentText, post)
  }

  private counts(): Map<string, number> {
    const out = new Map<string, number>()
    for (const c of Object.values(plain<CommentDoc>(this.comments))) if (c.note) out.set(c.note, (out.get(c.note) ?? 0) + 1)
    return out
  }

  private renderComments(): void {
    const counts = this.counts()
    const notes = [...this.doc.getMap('notes').keys()].sort()
    const chosen = this.noteSelect.value
    const labels = notes.map((id) => `${noteText(this.doc, id).slice(0, 40)} (${counts.get(id) ?? 0})`)
    const sig = JSON.stringify([notes, labels])
    if (sig !== this.noteOptionsSig) {
      // Rebuilt only when a label changes (typing in a note's first 40 characters), not per edit.
      this.noteOptionsSig = sig
      this.noteSelect.replaceChildren(h('option', { value: '' }, 'Choose a note…'), ...notes.map((id, i) => h('option', { value: id }, labels[i] ?? id)))
      this.noteSelect.value = notes.includes(chosen) ? chosen : ''
    }
    // Who wrote each comment follows from the client id that created it (attribution.ts); the
    // comment's own author fields are whatever its writer put there.
    const all = Object.entries(plain<CommentDoc>(this.comments)).map(([id, c]): [string, CommentDoc] => {
      const who = authorOf(this.doc, id, 'comments')
      return [id, who ? { ...c, author: who.user, author_name: who.name, org: who.org } : c]
    })
    const mine = all.filter(([, c]) => c.note === this.noteSelect.value).sort((a, b) => (a[1].created_at ?? 0) - (b[1].created_at ?? 0))
    const item = (id: string, c: CommentDoc, depth: number): HTMLElement =>
      h(
        'li',
        { 'data-comment-id': id, class: c.resolved ? 'resolved' : '', style: `margin-left:${depth}em` },
        h('strong', { class: 'ws-comment-author' }, `${c.author_name ?? '?'} (${this.orgName(c.org ?? '')})`),
        ' ',
        h('span', { class: 'ws-comment-text' }, c.text ?? ''),
        ' ',
        button('Reply', () => {
          this.replyTo = id
          setText(this.replyHint, `Replying to ${c.author_name ?? ''}`)
          this.commentText.focus()
        }),
        this.me.role !== 'viewer' ? button(c.resolved ? 'Reopen' : 'Resolve', () => (this.comments.get(id) as Y.Map<unknown> | undefined)?.set('resolved', !c.resolved)) : null,
      )
    const roots = mine.filter(([, c]) => !c.parent)
    const out: HTMLElement[] = []
    const walk = (parent: string, depth: number): void => {
      for (const [id, c] of mine.filter(([, x]) => x.parent === parent)) {
        out.push(item(id, c, depth))
        walk(id, depth + 1)
      }
    }
    for (const [id, c] of roots) {
      out.push(item(id, c, 0))
      walk(id, 1)
    }
    this.thread.replaceChildren(...out)
    if (!this.replyTo) setText(this.replyHint, '')
    // Notifications: comments by others that arrived after this tab loaded.
    for (const [id, c] of all) {
      if (this.seenComments.has(id) || !c.author) continue
      this.seenComments.add(id)
      if (this.initialised && c.author !== this.me.sub) toast(`${c.author_name ?? 'Someone'} commented on “${noteText(this.doc, c.note ?? '').slice(0, 30)}”`)
    }
  }

  private initialised = false

  private orgName(id: string): string {
    const o = this.doc.getMap('orgs').get(id)
    const name = o instanceof Y.Map ? o.get('name') : undefined
    return typeof name === 'string' ? name : id || 'facilitation'
  }

  // -- follow and gather -------------------------------------------------------------------

  private readonly followSelect = h('select', { id: 'ws-follow-person', 'aria-label': 'Follow a person' })

  private followSection(): HTMLElement {
    this.followSelect.addEventListener('change', () => {
      const v = this.followSelect.value
      if (!v) this.stopFollowing('')
      else this.follow(Number(v), this.followSelect.selectedOptions[0]?.textContent ?? '')
    })
    const facil = this.facilitator
      ? h(
          'div',
          { class: 'row' },
          button('Bring everyone to me', () => void this.act(this.api.call('POST', '/gather', this.viewport())), { id: 'ws-gather' }),
          button('Release', () => void this.act(this.api.call('DELETE', '/gather')), { id: 'ws-release' }),
          this.spotlightSelect,
        )
      : null
    this.spotlightSelect.addEventListener('change', () => void this.act(this.api.call('PUT', '/spotlight', { block: this.spotlightSelect.value || null })))
    return section('ws-follow', 'Follow', facil, h('label', {}, 'Follow ', this.followSelect), this.followStatus)
  }

  private follow(target: 'facilitator' | number, label: string): void {
    this.following = target
    setText(this.followStatus, `Following ${label}`)
    this.awareness?.setLocalStateField('following', label)
  }

  private stopFollowing(why: string): void {
    if (this.following === null) return
    this.following = null
    this.followTarget = null
    this.followSelect.value = ''
    setText(this.followStatus, why ? `Stopped following: ${why}` : '')
    this.awareness?.setLocalStateField('following', null)
  }

  private renderFollowChoices(): void {
    if (!this.awareness) return
    const chosen = this.followSelect.value
    const choices: Array<[string, string]> = [['', 'nobody']]
    for (const [cid, st] of this.awareness.getStates()) {
      if (cid === this.awareness.clientID) continue
      const user = (st as { user?: { name?: string; orgName?: string } }).user
      if (!user?.name) continue
      const following = (st as { following?: string | null }).following
      choices.push([String(cid), `${user.name}${user.orgName ? ` (${user.orgName})` : ''}${following ? ` — following ${following}` : ''}`])
    }
    // Awareness changes with every cursor move (many a second): rebuild only when the people do.
    const sig = JSON.stringify(choices)
    if (sig === this.followSig) return
    this.followSig = sig
    const opts = choices.map(([value, label]) => h('option', { value }, label))
    this.followSelect.replaceChildren(...opts)
    this.followSelect.value = opts.some((o) => o.value === chosen) ? chosen : ''
  }

  private renderStage(): void {
    const s = plain<unknown>(this.stage)
    const gather = s.gather as (Viewport & { seq: number; by_name?: string; by?: string }) | undefined
    if (gather && gather.seq !== this.lastGatherSeq) {
      this.lastGatherSeq = gather.seq
      if (gather.by !== this.me.sub) {
        this.follow('facilitator', gather.by_name ?? 'the facilitator')
        this.moveTo(gather)
      }
    } else if (!gather && this.following === 'facilitator') {
      this.stopFollowing('the facilitator released everyone')
    }
    const frozen = s.frozen === true
    this.frozenBanner.hidden = !frozen
    setText(this.frozenBanner, frozen ? `The canvas is frozen (read-only) by ${String(s.frozen_by ?? 'the facilitator')}.` : '')
    const spot = (s.spotlight as { block?: string } | undefined)?.block ?? ''
    for (const el of document.querySelectorAll<HTMLElement>('.block[data-block-id]')) setAttr(el, 'data-ws-spotlight', el.dataset.blockId === spot ? 'true' : null)
    if (this.facilitator) {
      const blocks = [...this.doc.getMap('blocks').entries()].map(([id, b]) => [id, b instanceof Y.Map ? String(b.get('title') ?? id) : id] as const)
      this.spotlightSelect.replaceChildren(h('option', { value: '' }, 'No spotlight'), ...blocks.map(([id, t]) => h('option', { value: id }, t)))
      this.spotlightSelect.value = spot
    }
  }

  // -- console -----------------------------------------------------------------------------

  private consoleSection(): HTMLElement {
    const flag = (label: string, id: string, path: string, body: (on: boolean) => unknown, method = 'PUT'): HTMLElement => {
      const box = h('input', { type: 'checkbox', id })
      box.addEventListener('change', () => void this.act(this.api.call(method, path, body(box.checked))))
      return h('label', { class: 'check' }, box, ` ${label}`)
    }
    const refresh = button('Refresh', () => void this.refreshConsole(), { id: 'ws-console-refresh' })
    this.orgFilter.addEventListener('change', () => void this.refreshConsole())
    return section(
      'ws-console',
      'Facilitator console',
      h(
        'div',
        { class: 'ws-flags' },
        flag('Freeze the canvas', 'ws-freeze', '/freeze', (on) => ({ frozen: on })),
        flag('Lock every block', 'ws-lock-all', '/locks', (on) => ({ locked: on })),
        flag('Partners protect their notes', 'ws-protect', '/settings', (on) => ({ protect_notes: on }), 'PATCH'),
        flag('Viewers may comment', 'ws-viewer-comments', '/settings', (on) => ({ viewer_comments: on }), 'PATCH'),
      ),
      refresh,
      h('h3', {}, 'Participants'),
      this.people,
      h('h3', {}, 'Invite links in use'),
      this.inviteUses,
      h('h3', {}, 'Timeline'),
      this.orgFilter,
      this.timeline,
    )
  }

  private async refreshConsole(quiet = false): Promise<void> {
    try {
      const people = await this.api.call<ConsolePerson[]>('GET', '/console/participants')
      this.people.replaceChildren(
        h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Organization'), h('th', {}, 'Role'), h('th', {}, 'Here'), h('th', {}, '')),
        ...people.map((p) => {
          const role = h('select', { 'aria-label': `Role of ${p.name}` }, ...['editor', 'viewer', 'facilitator'].map((r) => h('option', { value: r }, r)))
          role.value = p.role
          role.addEventListener('change', () => void this.act(this.api.call('PUT', `/participants/${p.user_id}/role`, { role: role.value }).then(() => this.refreshConsole())))
          const seen = p.online ? 'online' : p.last_seen ? `seen ${new Date(p.last_seen * 1000).toLocaleTimeString()}` : '—'
          return h(
            'tr',
            { 'data-user-id': p.user_id },
            h('td', {}, p.name),
            h('td', {}, p.org_name),
            h('td', {}, p.removed ? 'removed' : role),
            h('td', {}, seen),
            h('td', {}, p.removed ? '' : button('Remove', () => void this.act(this.api.call('DELETE', `/participants/${p.user_id}`).then(() => this.refreshConsole())))),
          )
        }),
      )
      const invites = await this.api.call<Array<{ id: string; org_id: string; role: string; uses: number; max_uses: number | null; revoked: boolean; expired: boolean }>>('GET', '/invites')
      this.inviteUses.replaceChildren(
        ...invites
          .filter((i) => !i.revoked && !i.expired)
          .map((i) => h('li', { 'data-invite-id': i.id }, `${this.orgName(i.org_id)} · ${i.role}: ${i.uses}${i.max_uses ? ` of ${i.max_uses}` : ''} use${i.uses === 1 ? '' : 's'}`)),
      )
      const orgs = [...this.doc.getMap('orgs').keys()]
      const chosen = this.orgFilter.value
      this.orgFilter.replaceChildren(h('option', { value: '' }, 'All organizations'), ...orgs.map((o) => h('option', { value: o }, this.orgName(o))))
      this.orgFilter.value = chosen
      const entries = await this.api.call<Array<{ at: number; text: string }>>('GET', `/console/timeline${chosen ? `?org=${encodeURIComponent(chosen)}` : ''}`)
      this.timeline.replaceChildren(...entries.slice(0, 100).map((e) => h('li', {}, `${new Date(e.at * 1000).toLocaleTimeString()} ${e.text}`)))
    } catch (e) {
      if (!quiet) toast(e instanceof Error ? e.message : String(e), 'error')
    }
  }

  // -- everything ----------------------------------------------------------------------------

  private render(): void {
    this.renderVote()
    this.renderComments()
    this.renderStage()
    this.decorateBoard()
    if (this.facilitator) {
      const s = plain<unknown>(this.stage)
      const box = (id: string): HTMLInputElement | null => this.el.querySelector<HTMLInputElement>(`#${id}`)
      const freeze = box('ws-freeze')
      if (freeze) freeze.checked = s.frozen === true
      const vc = box('ws-viewer-comments')
      if (vc) vc.checked = s.viewer_comments === true
      const protect = box('ws-protect')
      if (protect) protect.checked = this.doc.getMap('meta').get('protect_notes') === true
    }
    this.initialised = true
  }

  /** Dots and comment counts on the board's notes (data attributes, drawn by CSS). */
  private decorateBoard(): void {
    const latest = this.latestRound()
    const tally = latest ? (latest[1].tally ?? latest[1].live ?? null) : null
    const totals = new Map<string, number>((tally?.ranking ?? []).map((r) => [r.note, r.total]))
    const counts = this.counts()
    for (const el of document.querySelectorAll<HTMLElement>('.note[data-note-id]')) {
      const id = el.dataset.noteId ?? ''
      const dots = totals.get(id) ?? (latest?.[1].status === 'open' ? this.myBallot[id] : undefined)
      const dotText = dots ? '●'.repeat(Math.min(dots, 10)) + (dots > 10 ? `+${dots - 10}` : '') : null
      const n = counts.get(id)
      const commentText = n ? `${n} comment${n === 1 ? '' : 's'}` : null
      setAttr(el, 'data-ws-dots', dotText)
      setAttr(el, 'data-ws-comments', commentText)
      // On the board, as badges in the note's own decoration slot.
      const decor = this.board?.decorations(id)
      if (decor) {
        let badge = decor.querySelector<HTMLElement>('.ws-badge')
        if (!badge) {
          badge = h('span', { class: 'ws-badge' })
          decor.append(badge)
        }
        setText(badge, [dotText, commentText ? `✉ ${n}` : null].filter(Boolean).join(' '))
        setAttr(badge, 'title', [dots ? `${dots} dot${dots === 1 ? '' : 's'}` : null, commentText].filter(Boolean).join(', ') || null)
      }
    }
  }
}

function beep(): void {
  try {
    const ctx = new AudioContext()
    const osc = ctx.createOscillator()
    osc.frequency.value = 880
    osc.connect(ctx.destination)
    osc.start()
    osc.stop(ctx.currentTime + 0.4)
  } catch {
    // no audio: the visible end is enough
  }
}
