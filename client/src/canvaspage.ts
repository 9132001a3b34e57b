// /c/{id}: one live canvas. Wires the doc, the provider, undo, presence and the views.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import * as authProtocol from 'y-protocols/auth'
import * as awarenessProtocol from 'y-protocols/awareness'
import { Announcer, excerpt } from './a11y'
import { templateLabel } from './api'
import { Board, type BoardHost } from './board'
import { NEUTRAL_COLOR } from './colors'
import {
  CLOSE_MESSAGES,
  PendingCounter,
  describeConnection,
  initialConnection,
  isPermanentClose,
  isRetryableByHand,
  type ConnectionState,
  type WsStatus,
} from './connection'
import { chooseDialog, confirmDialog } from './dialogs'
import { DraftsPanel, RevealWatcher, draftBanner, draftOrg, draftParams, draftsWsBase, type DraftMode } from './drafts'
import { h, setAttr, setText } from './dom'
import { FitView } from './fitview'
import { fitDoc, readLinks } from './fitmodel'
import { InvitePanel } from './invites'
import { allBlocks, allNotes, allOrgs, canvasDoc, orgLabel, type BlockInfo, type NoteInfo } from './model'
import { addNote, deleteNote, moveNote, setBlockLock } from './notes'
import { buildOutline, renderOutline } from './outline'
import { PresenceTracker, editorsByNote, peersFrom, peopleHere, personLabel, type Cursor } from './presence'
import { canEdit, decodeClaims, isExpired, loadToken, mayAddTo, mayEditNote, type Claims } from './session'
import { toast } from './toast'
import { WorkshopPanel } from './workshop/panel'
import { VersionsPanel } from './versions'
import { FROZEN, explainRefusal, showWhy, whyReadOnly } from './why'

export function wsBase(loc: Pick<Location, 'protocol' | 'host'> = location): string {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/ws`
}

function messagePage(root: HTMLElement, title: string, body: string): void {
  root.replaceChildren(
    h(
      'div',
      { class: 'page' },
      h('header', { class: 'topbar' }, h('h1', {}, h('a', { href: '/' }, 'CoCanvas'))),
      h('main', { id: 'main', class: 'narrow' }, h('div', { class: 'card message', role: 'alert' }, h('h2', {}, title), h('p', {}, body), h('p', {}, h('a', { href: '/' }, 'Back to all canvases')))),
    ),
  )
}

export interface CanvasPage {
  destroy(): void
}

export function renderCanvasPage(root: HTMLElement, canvasId: string, drafts: DraftMode | null = null): CanvasPage {
  const token = loadToken(canvasId)
  const claims = token ? decodeClaims(token) : null
  if (!token || !claims) {
    messagePage(root, 'You need an invite link', 'To join this canvas, open the invite link the facilitator shared with you.')
    return { destroy() {} }
  }
  if (isExpired(claims)) {
    messagePage(root, 'Your access has expired', 'Ask the facilitator for a new invite link to rejoin this canvas.')
    return { destroy() {} }
  }
  return new LiveCanvas(root, canvasId, token, claims, drafts)
}

/** Marks this page's own transactions: the UndoManager tracks only these. */
const LOCAL = { local: 'cocanvas-ui' }

class LiveCanvas implements CanvasPage, BoardHost {
  readonly cdoc = canvasDoc(new Y.Doc())
  readonly origin = LOCAL
  private readonly provider: WebsocketProvider
  private readonly undo: Y.UndoManager
  private readonly board: Board
  private readonly announcer: Announcer
  private readonly tracker = new PresenceTracker()
  private readonly pending = new PendingCounter()
  private conn: ConnectionState = initialConnection(navigator.onLine)
  private readonly statusEl: HTMLElement
  private readonly titleEl: HTMLElement
  private readonly subtitleEl: HTMLElement
  private readonly peopleEl: HTMLElement
  private readonly outlineEl: HTMLElement
  private readonly undoBtn: HTMLButtonElement
  private readonly redoBtn: HTMLButtonElement
  private readonly invitePanel: InvitePanel | null
  private readonly workshop: WorkshopPanel | null
  private readonly versionsPanel: VersionsPanel
  private readonly loadingEl: HTMLElement
  private outlineTimer: ReturnType<typeof setTimeout> | null = null
  private readonly cleanups: Array<() => void> = []
  private lastAnnouncedState = ''
  private readonly meEl: HTMLElement
  private readonly retryBtn: HTMLButtonElement = h('button', { type: 'button', class: 'btn btn-small', hidden: true }, 'Try again')
  private lastOrgKey = ''
  private readonly zoomLabel: HTMLElement
  private readonly drawerBtn: HTMLButtonElement
  private peopleSignature = ''
  private readonly fit: FitView
  // Private drafts (drafts.ts): this page is a draft space, or the shared canvas's panel.
  private readonly draftsPanel: DraftsPanel | null
  private readonly banner: ReturnType<typeof draftBanner> | null
  private readonly reveals = new RevealWatcher((sentence) => {
    toast(sentence, 'info', 10000)
    this.announcer.say(sentence)
  })

  constructor(
    root: HTMLElement,
    private readonly canvasId: string,
    private readonly token: string,
    private readonly me: Claims,
    private readonly drafts: DraftMode | null = null,
  ) {
    const doc = this.cdoc.doc
    this.board = new Board(this)
    this.undo = new Y.UndoManager([this.cdoc.notes, this.cdoc.blocks], { trackedOrigins: new Set([LOCAL]) })

    // --- chrome -------------------------------------------------------------------------
    this.titleEl = h('h1', { class: 'canvas-title' }, 'Loading…')
    this.subtitleEl = h('span', { class: 'muted template-label' })
    this.statusEl = h('div', { class: 'conn', 'data-state': 'connecting', id: 'connection-status' }, 'Connecting…')
    const myOrg = this.myOrg()
    const meEl = h('div', { class: 'me' }, `${me.name || 'You'} · ${myOrg.name} · ${me.role}`)
    this.meEl = meEl
    this.undoBtn = h('button', { type: 'button', class: 'btn', disabled: true, 'aria-keyshortcuts': 'Control+Z', title: 'Undo (Ctrl+Z)' }, '↶ Undo')
    this.redoBtn = h('button', { type: 'button', class: 'btn', disabled: true, 'aria-keyshortcuts': 'Control+Shift+Z', title: 'Redo (Ctrl+Shift+Z)' }, '↷ Redo')
    this.undoBtn.addEventListener('click', () => this.undoRedo('undo'))
    this.redoBtn.addEventListener('click', () => this.undoRedo('redo'))
    const outlineToggle = h('button', { type: 'button', class: 'btn', 'aria-pressed': 'false', 'aria-controls': 'outline' }, 'Outline view')
    // Zoom: the board's viewport API, also on the keyboard (= / - / 0 on the board).
    const zoomOut = h('button', { type: 'button', class: 'btn btn-icon zoom-out', title: 'Zoom out (-)', 'aria-label': 'Zoom out' }, '−')
    const zoomIn = h('button', { type: 'button', class: 'btn btn-icon zoom-in', title: 'Zoom in (=)', 'aria-label': 'Zoom in' }, '+')
    const fit = h('button', { type: 'button', class: 'btn fit-all', title: 'Show the whole canvas (0)' }, 'Fit')
    this.zoomLabel = h('span', { class: 'zoom-level', 'aria-live': 'off' }, '100%')
    zoomOut.addEventListener('click', () => this.board.viewport.zoomBy(1 / 1.25, undefined, 'user'))
    zoomIn.addEventListener('click', () => this.board.viewport.zoomBy(1.25, undefined, 'user'))
    fit.addEventListener('click', () => this.board.fitAll('user'))
    this.board.onViewChange((v) => setText(this.zoomLabel, `${Math.round(v.scale * 100)}%`))
    // Below desktop widths the side panel is a drawer over the board, opened from the toolbar.
    this.drawerBtn = h('button', { type: 'button', class: 'btn drawer-toggle', 'aria-expanded': 'false', 'aria-controls': 'sidebar' }, 'People')
    const announceBox = h('input', { type: 'checkbox', id: 'announce-presence' })
    const liveRegion = h('div', { class: 'visually-hidden', id: 'presence-live' })
    this.announcer = new Announcer(liveRegion)
    announceBox.checked = this.announcer.presenceEnabled
    announceBox.addEventListener('change', () => this.announcer.setPresenceEnabled(announceBox.checked))
    const help = h(
      'details',
      { class: 'help-keys' },
      h('summary', {}, 'Keyboard'),
      h(
        'ul',
        {},
        h('li', {}, 'Tab: go through blocks and notes; arrow keys: next block / note'),
        h('li', {}, 'N (on a block): add a note; Enter (on a block): first note'),
        h('li', {}, 'Enter (on a note): edit; Escape: stop editing'),
        h('li', {}, 'M: move note to another block; Alt+arrows: move to next / previous block'),
        h('li', {}, 'Delete: delete note (asks first)'),
        h('li', {}, 'L (on a product, pain reliever or gain creator): link it to the job, pain or gain it addresses'),
        h('li', {}, 'Ctrl+Z / Ctrl+Shift+Z: undo / redo your own changes'),
      ),
    )
    this.peopleEl = h('ul', { class: 'people', id: 'people' })
    this.outlineEl = h('section', { class: 'outline panel-side', id: 'outline', hidden: true, 'aria-labelledby': 'outline-heading' })
    outlineToggle.addEventListener('click', () => {
      const show = this.outlineEl.hidden
      this.outlineEl.hidden = !show
      outlineToggle.setAttribute('aria-pressed', String(show))
      if (show) {
        // Where the side panel is a drawer, the outline opens it.
        if (this.drawerBtn.offsetParent !== null && this.drawerBtn.getAttribute('aria-expanded') !== 'true') this.drawerBtn.click()
        this.renderOutlineNow()
        this.outlineEl.querySelector<HTMLElement>('h2')?.setAttribute('tabindex', '-1')
        this.outlineEl.querySelector<HTMLElement>('h2')?.focus()
      }
    })
    this.invitePanel = me.role === 'facilitator' && !drafts ? new InvitePanel(canvasId, token) : null
    this.draftsPanel = drafts ? null : new DraftsPanel(canvasId, token, me)
    this.banner = drafts ? draftBanner(canvasId) : null
    this.versionsPanel = new VersionsPanel(canvasId, token, me.role === 'facilitator')
    this.loadingEl = h('p', { class: 'loading', role: 'status' }, 'Loading the canvas…')
    const boardWrap = h('main', { id: 'main', class: 'board-wrap', 'aria-label': 'Canvas' }, this.board.navEl, this.loadingEl, this.board.el)
    // Fit across partners (fitview.ts): links drawn over the board, the contribution map, the value exchange.
    this.fit = new FitView({
      cdoc: this.cdoc,
      origin: LOCAL,
      canvasId,
      token,
      me,
      board: this.board,
      protectNotes: () => this.protectNotes(),
      frozen: () => this.frozen(),
      refused: (m) => this.refused(m),
    })
    this.cleanups.push(() => this.fit.destroy())
    // The workshop panel (workshop/panel.ts) runs the shared canvas, not a draft space.
    this.workshop = drafts
      ? null
      : new WorkshopPanel(doc, canvasId, token, me, {
          visible: () => this.board.viewport.visibleRect(),
          show: (rect) => this.board.showRect(rect),
          onViewChange: (cb) => this.board.onViewChange((_v, reason) => cb(reason === 'user')),
          decorations: (id) => this.board.noteDecorations(id),
        })

    const readOnlyBadge = canEdit(me) ? null : h('span', { class: 'tag' }, 'view only')
    root.replaceChildren(
      h(
        'div',
        { class: drafts ? 'page canvas-page drafts-mode' : 'page canvas-page' },
        h(
          'header',
          { class: 'topbar' },
          h('a', { href: '/', class: 'back' }, '← Canvases'),
          this.titleEl,
          this.subtitleEl,
          readOnlyBadge,
          h('span', { class: 'spacer' }),
          meEl,
          this.statusEl,
          this.retryBtn,
        ),
        this.banner?.el ?? null,
        h(
          'div',
          { class: 'toolbar', role: 'group', 'aria-label': 'Canvas tools' },
          this.undoBtn,
          this.redoBtn,
          h('span', { class: 'zoom-group', role: 'group', 'aria-label': 'Zoom' }, zoomOut, this.zoomLabel, zoomIn, fit),
          outlineToggle,
          this.fit.toggle,
          this.drawerBtn,
          h('label', { class: 'check' }, announceBox, ' Announce who joins and leaves'),
          help,
        ),
        h(
          'div',
          { class: 'workspace' },
          boardWrap,
          h(
            'aside',
            { class: 'sidebar', id: 'sidebar', 'aria-label': 'People and tools' },
            h('section', { class: 'panel-side', 'aria-labelledby': 'people-heading' }, h('h2', { id: 'people-heading' }, 'Here now'), this.peopleEl),
            this.outlineEl,
            this.invitePanel?.el ?? null,
            this.workshop?.el ?? null,
            this.drafts ? null : this.versionsPanel.el,
            this.draftsPanel?.el ?? null,
          ),
        ),
        this.fit.el,
        liveRegion,
      ),
    )

    const sidebar = root.querySelector<HTMLElement>('#sidebar')
    this.drawerBtn.addEventListener('click', () => {
      const open = this.drawerBtn.getAttribute('aria-expanded') !== 'true'
      this.drawerBtn.setAttribute('aria-expanded', String(open))
      sidebar?.classList.toggle('open', open)
      if (open) sidebar?.querySelector<HTMLElement>('h2')?.focus()
    })

    // --- document -----------------------------------------------------------------------
    // Structure (blocks, orgs, meta) re-renders the board's frame; notes are passed on by id,
    // so a remote edit costs the notes it changed, once per frame.
    const rerender = (): void => this.render()
    const onNotes = (events: Array<Y.YEvent<any>>, tr: Y.Transaction): void => {
      const ids = new Set<string>()
      for (const ev of events) {
        if (ev.target === this.cdoc.notes) for (const k of (ev as Y.YMapEvent<unknown>).keysChanged) ids.add(k)
        else if (typeof ev.path[0] === 'string') ids.add(ev.path[0])
      }
      this.board.notesChanged(ids, tr.origin === LOCAL)
      this.scheduleOutline()
    }
    this.cdoc.blocks.observeDeep(rerender)
    this.cdoc.notes.observeDeep(onNotes)
    this.cdoc.orgs.observeDeep(rerender)
    this.cdoc.meta.observe(rerender)
    // A frozen canvas (the workshop stage, written by the server) is read-only for everyone:
    // the board re-renders its notes and blocks as such; other stage changes leave it alone.
    const stageMap = doc.getMap('stage')
    let wasFrozen = false
    const onStage = (): void => {
      const now = this.frozen()
      if (now === wasFrozen) return
      wasFrozen = now
      this.board.el.toggleAttribute('data-frozen', now)
      this.render()
      if (now) this.announcer.say(FROZEN)
    }
    stageMap.observe(onStage)
    this.cleanups.push(() => stageMap.unobserve(onStage))
    // Leaving with edits the server has not confirmed loses them: the browser asks first.
    const onBeforeUnload = (e: BeforeUnloadEvent): void => {
      if (this.pending.value <= 0) return
      e.preventDefault()
      e.returnValue = ''
    }
    window.addEventListener('beforeunload', onBeforeUnload)
    this.cleanups.push(() => window.removeEventListener('beforeunload', onBeforeUnload))
    this.cleanups.push(() => {
      this.cdoc.blocks.unobserveDeep(rerender)
      this.cdoc.notes.unobserveDeep(onNotes)
      this.cdoc.orgs.unobserveDeep(rerender)
      this.cdoc.meta.unobserve(rerender)
    })
    const updateUndo = (): void => {
      this.undoBtn.disabled = !this.undo.canUndo()
      this.redoBtn.disabled = !this.undo.canRedo()
    }
    for (const ev of ['stack-item-added', 'stack-item-popped', 'stack-cleared'] as const) this.undo.on(ev, updateUndo)

    // --- connection ---------------------------------------------------------------------
    this.provider = new WebsocketProvider(drafts ? draftsWsBase() : wsBase(), canvasId, doc, {
      params: drafts ? draftParams(token, drafts) : { token },
      // Tabs of one browser sync through the server only: every edit is checked there.
      disableBc: true,
      shouldReconnect: (event: CloseEvent) => !isPermanentClose(event.code),
    })
    this.workshop?.attachAwareness(this.provider.awareness)
    // y-websocket only logs auth messages; the user must learn that an edit was refused.
    // (The server already sent compensating changes, so the doc is consistent again.)
    this.provider.messageHandlers[2] = (_enc, decoder) => {
      authProtocol.readAuthMessage(decoder, doc, (_d, reason) => {
        toast(explainRefusal(reason, (id) => this.board.blockInfo(id)?.title), 'error', 10000)
      })
    }
    doc.on('update', (_u: Uint8Array, origin: unknown) => {
      if (origin !== this.provider) {
        this.pending.localUpdate()
        this.updateConn({})
      }
    })
    this.provider.on('status', ({ status }: { status: WsStatus }) => {
      this.pending.status(status)
      this.updateConn({ status, everConnected: this.conn.everConnected || status === 'connected', synced: status === 'connected' ? this.conn.synced : false })
      this.tracker.setConnected(status === 'connected' && this.conn.synced, Date.now())
    })
    this.provider.on('sync', (synced: boolean) => {
      this.pending.sync(synced)
      this.updateConn({ synced })
      this.tracker.setConnected(synced && this.conn.status === 'connected', Date.now())
      if (synced) this.loadingEl.remove()
      this.render()
    })
    this.provider.on('connection-close', (event: CloseEvent | null) => {
      if (event && event.code !== 1000 && event.code !== 1005 && event.code !== 1006) {
        this.updateConn({ lastClose: { code: event.code, reason: event.reason } })
        if (event.code === 1012) toast(CLOSE_MESSAGES[1012] ?? 'Server restarting', 'info')
        if (event.code === 4429) toast(CLOSE_MESSAGES[4429] ?? 'Rate limited', 'error')
      }
    })
    this.provider.on('closed', ({ code, reason }: { code: number; reason: string }) => {
      this.updateConn({ stopped: true, lastClose: { code, reason } })
      toast(CLOSE_MESSAGES[code] ?? `Disconnected by the server (${code}${reason ? ': ' + reason : ''}).`, 'error', 15000)
      this.retryBtn.hidden = !isRetryableByHand(code)
    })
    this.retryBtn.addEventListener('click', () => {
      this.retryBtn.hidden = true
      this.updateConn({ stopped: false })
      this.provider.connect()
    })
    // A dead network is often noticed by the browser long before the socket times out.
    const offline = (): void => {
      this.updateConn({ browserOnline: false })
      if (this.provider.wsconnected || this.provider.wsconnecting) this.provider.disconnect()
    }
    const online = (): void => {
      this.updateConn({ browserOnline: true })
      if (!this.conn.stopped) this.provider.connect()
    }
    window.addEventListener('offline', offline)
    window.addEventListener('online', online)
    this.cleanups.push(() => {
      window.removeEventListener('offline', offline)
      window.removeEventListener('online', online)
    })
    if (!navigator.onLine) offline()

    // --- presence -----------------------------------------------------------------------
    const awareness = this.provider.awareness
    awareness.setLocalState({
      user: { id: me.sub, name: me.name || 'Anonymous', org: me.org, orgName: myOrg.name, color: myOrg.color, role: me.role },
      cursor: null,
      editing: null,
    })
    const onAwareness = (): void => this.renderPresence()
    awareness.on('change', onAwareness)
    const ticker = setInterval(() => {
      // Tells tests (and the curious) when joins and leaves are announced.
      setAttr(this.peopleEl, 'data-settled', String(this.tracker.isSettled(Date.now())))
      for (const u of this.tracker.tick(Date.now()).left) this.presenceNews(`${personLabel(u, allOrgs(this.cdoc))} left`)
    }, 1000)
    // Say goodbye while the socket is still open, so others see us leave at once.
    const onPageHide = (): void => awarenessProtocol.removeAwarenessStates(awareness, [doc.clientID], 'window unload')
    window.addEventListener('pagehide', onPageHide)
    this.cleanups.push(() => window.removeEventListener('pagehide', onPageHide))
    const onResize = (): void => this.board.resized()
    window.addEventListener('resize', onResize)
    // The board also changes size without the window: the fit view opening under it, the
    // block picker appearing. The view re-fits (unless the person moved it) as on a resize.
    const boardSize = new ResizeObserver(onResize)
    boardSize.observe(this.board.el)
    this.cleanups.push(() => {
      awareness.off('change', onAwareness)
      clearInterval(ticker)
      boardSize.disconnect()
      window.removeEventListener('resize', onResize)
      this.board.destroy()
    })

    // --- keyboard: undo/redo anywhere on the page, including inside a note ---------------
    const onKey = (e: KeyboardEvent): void => {
      if (!(e.ctrlKey || e.metaKey) || e.altKey) return
      // Form fields (invite panel, dialogs) keep the browser's own undo; notes use the canvas's.
      const t = e.target as HTMLElement
      if ((t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA') && !t.classList.contains('note-text')) return
      const k = e.key.toLowerCase()
      if (k === 'z' && !e.shiftKey) {
        e.preventDefault()
        this.undoRedo('undo')
      } else if ((k === 'z' && e.shiftKey) || k === 'y') {
        e.preventDefault()
        this.undoRedo('redo')
      }
    }
    document.addEventListener('keydown', onKey, true)
    this.cleanups.push(() => document.removeEventListener('keydown', onKey, true))

    this.render()
    this.renderPresence()
    this.updateConn({})
  }

  // --- BoardHost ---------------------------------------------------------------------------

  private myOrg() {
    return orgLabel(allOrgs(this.cdoc), this.drafts ? draftOrg(this.me, this.drafts) : this.me.org)
  }

  isFacilitator(): boolean {
    return this.me.role === 'facilitator'
  }

  /** The facilitator froze the canvas (stage.frozen): no one changes it until it is unfrozen. */
  private frozen(): boolean {
    return this.cdoc.doc.getMap('stage').get('frozen') === true
  }

  /** Undo and redo write to the canvas too: refused at once while it is frozen. */
  private undoRedo(which: 'undo' | 'redo'): void {
    if (this.frozen()) {
      this.refused(FROZEN)
      return
    }
    if (which === 'undo') this.undo.undo()
    else this.undo.redo()
  }

  private protectNotes(): boolean {
    return this.cdoc.meta.get('protect_notes') === true
  }

  canAddTo(block: BlockInfo): boolean {
    // Same rule as the server's policy: editors add anywhere, including a partner's value map,
    // except into locked blocks; protect_notes only guards editing existing notes.
    return !this.frozen() && mayAddTo(this.me, block)
  }

  canEditNote(note: NoteInfo, block: BlockInfo | undefined): boolean {
    return !this.frozen() && mayEditNote(this.me, note, block, this.protectNotes())
  }

  refused(message: string): void {
    toast(message, 'error')
  }

  explainReadOnly(note: NoteInfo, block: BlockInfo | undefined, anchor: HTMLElement): void {
    const why = whyReadOnly(note, { me: this.me, protectNotes: this.protectNotes(), org: orgLabel(allOrgs(this.cdoc), note.org), block, frozen: this.frozen() })
    if (!why) return
    showWhy(anchor, why.who, why.why)
    this.announcer.say(`${why.who}. ${why.why}`)
  }

  /** Joins and leaves: a quiet toast for everyone, the live region for screen readers (if wanted). */
  private presenceNews(message: string): void {
    toast(message, 'info', 3500)
    this.announcer.presence(message)
  }

  addNote(blockId: string, at?: { x: number; y: number }): void {
    const block = this.board.blockInfo(blockId)
    if (!block) return
    if (!this.canAddTo(block)) {
      this.refused(this.frozen() ? FROZEN : block.lockedBy ? `${block.title} is locked.` : `You cannot add notes to ${block.title}.`)
      return
    }
    const org = this.myOrg()
    const id = addNote(
      this.cdoc,
      blockId,
      { id: this.me.sub, name: this.me.name, org: this.me.org, color: org.color || NEUTRAL_COLOR },
      LOCAL,
      { at: at ?? this.board.spotFor(blockId) },
    )
    // Each note is its own undo step, not merged with typing that follows.
    this.undo.stopCapturing()
    this.announcer.say(`Note added to ${block.title}`)
    this.board.startEdit(id)
  }

  moveNote(noteId: string, blockId: string, at: { x: number; y: number } | null): void {
    const view = this.board.noteView(noteId)
    const target = this.board.blockInfo(blockId)
    if (!view || !target) return
    if (!this.canEditNote(view.note, this.board.blockInfo(view.note.block)) || !this.canAddTo(target)) {
      this.refused(this.frozen() ? FROZEN : target.lockedBy ? `${target.title} is locked.` : `You cannot move this note to ${target.title}.`)
      return
    }
    const crossing = view.note.block !== blockId
    moveNote(this.cdoc, noteId, blockId, at ?? this.board.spotFor(blockId) ?? null, LOCAL)
    this.undo.stopCapturing()
    if (crossing) this.announcer.say(`Note moved to ${target.title}`)
    this.board.focusNote(noteId)
  }

  requestDelete(noteId: string): void {
    const view = this.board.noteView(noteId)
    if (!view) return
    if (!this.canEditNote(view.note, this.board.blockInfo(view.note.block))) {
      this.refused(this.frozen() ? FROZEN : 'You cannot delete this note.')
      return
    }
    const blockId = view.note.block
    // The server removes the links that end at a deleted note (other partners' too), and undo
    // brings back only this person's own change, the note: say so before, not after.
    const links = readLinks(fitDoc(this.cdoc.doc)).filter((l) => l.from === noteId || l.to === noteId).length
    const linkWords = links ? ` Its ${links === 1 ? 'fit link goes' : `${links} fit links go`} too: undo brings back the note, not ${links === 1 ? 'the link' : 'the links'}.` : ''
    void confirmDialog(`Delete the note “${excerpt(view.note.text, 60)}”?${linkWords}`, 'Delete note').then((ok) => {
      if (!ok) return
      deleteNote(this.cdoc, noteId, LOCAL)
      this.undo.stopCapturing()
      this.announcer.say(links ? 'Note and its links deleted. Ctrl+Z brings the note back, without its links.' : 'Note deleted. Ctrl+Z brings it back.')
      this.board.focusBlock(blockId)
    })
  }

  requestMove(noteId: string): void {
    const view = this.board.noteView(noteId)
    if (!view) return
    if (!this.canEditNote(view.note, this.board.blockInfo(view.note.block))) {
      this.refused(this.frozen() ? FROZEN : 'You cannot move this note.')
      return
    }
    const choices = this.board.blockOrder.map((b) => ({
      value: b.id,
      label: b.title,
      disabled: !this.canAddTo(b),
      current: b.id === view.note.block,
    }))
    void chooseDialog('Move note to…', choices).then((target) => {
      if (target) this.moveNote(noteId, target, null)
      else this.board.focusNote(noteId)
    })
  }

  toggleLock(blockId: string): void {
    const block = this.board.blockInfo(blockId)
    if (!block || !this.isFacilitator()) return
    setBlockLock(this.cdoc, blockId, block.lockedBy ? '' : this.me.sub, LOCAL)
    this.announcer.say(`${block.title} ${block.lockedBy ? 'unlocked' : 'locked'}`)
  }

  private lastEditing: string | null = null
  setEditing(noteId: string | null): void {
    if (noteId === this.lastEditing) return
    this.lastEditing = noteId
    this.provider.awareness.setLocalStateField('editing', noteId)
  }

  setCursor(cursor: Cursor | null): void {
    this.provider.awareness.setLocalStateField('cursor', cursor)
  }

  // --- rendering -----------------------------------------------------------------------

  private render(): void {
    const title = String(this.cdoc.meta.get('title') ?? '')
    const template = String(this.cdoc.meta.get('template') ?? '')
    if (title || this.conn.synced) {
      setText(this.titleEl, (this.drafts ? 'Private drafts · ' : '') + (title || 'Untitled canvas'))
      document.title = `${this.drafts ? 'Private drafts — ' : ''}${title || 'Canvas'} — CoCanvas`
    }
    this.versionsPanel.title = title || 'canvas'
    setText(this.subtitleEl, template ? templateLabel(template) : '')
    this.board.render()
    if (this.cdoc.blocks.size > 0) this.loadingEl.remove()
    // Org names and colours arrive with the first sync; presence must carry the real ones.
    const org = this.myOrg()
    const orgKey = `${org.name}\u0001${org.color}`
    if (orgKey !== this.lastOrgKey) {
      this.lastOrgKey = orgKey
      setText(this.meEl, `${this.me.name || 'You'} · ${org.name} · ${this.me.role}`)
      const state = this.provider?.awareness.getLocalState()
      if (state) {
        this.provider.awareness.setLocalStateField('user', { ...(state.user as object), orgName: org.name, color: org.color })
      }
    }
    this.invitePanel?.setOrgs(allOrgs(this.cdoc))
    this.draftsPanel?.setOrgs(allOrgs(this.cdoc))
    this.banner?.setOrg(org)
    this.reveals.update(this.cdoc.meta.get('last_reveal'), allOrgs(this.cdoc), this.conn.synced)
    this.scheduleOutline()
  }

  private scheduleOutline(): void {
    if (!this.outlineEl.hidden && !this.outlineTimer) {
      // Debounced: rewriting the outline under a screen reader's virtual cursor is disorienting.
      this.outlineTimer = setTimeout(() => {
        this.outlineTimer = null
        this.renderOutlineNow()
      }, 400)
    }
  }

  private renderOutlineNow(): void {
    // Same block order as Tab on the board, so both views read alike.
    const order = this.board.blockOrder.length ? this.board.blockOrder : allBlocks(this.cdoc)
    renderOutline(this.outlineEl, buildOutline(order, allNotes(this.cdoc), allOrgs(this.cdoc)))
    this.outlineEl.append(this.fit.outline())
  }

  private renderPresence(): void {
    const awareness = this.provider.awareness
    const peers = peersFrom(awareness.getStates(), this.cdoc.doc.clientID)
    const people = peopleHere(peers)
    const orgs = allOrgs(this.cdoc)
    // Cursor moves arrive many times a second; rebuild the list only when it changes.
    const signature = people.map((p) => `${p.user.id}\u0001${personLabel(p.user, orgs)}\u0001${p.user.color}\u0001${p.self}`).join('\u0002')
    if (signature !== this.peopleSignature) {
      this.peopleSignature = signature
      this.peopleEl.replaceChildren(
        ...people.map((p) =>
          h(
            'li',
            { 'data-user-id': p.user.id, style: `--c:${p.user.color || NEUTRAL_COLOR}` },
            h('span', { class: 'dot', 'aria-hidden': 'true' }),
            personLabel(p.user, orgs),
            p.self ? h('span', { class: 'muted' }, ' (you)') : null,
          ),
        ),
      )
    }
    this.board.setPeers(peers, editorsByNote(peers))
    const change = this.tracker.update(people, Date.now())
    for (const u of change.joined) this.presenceNews(`${personLabel(u, orgs)} joined`)
    if (change.joined.length) this.invitePanel?.joinedSomeone()
    for (const u of change.left) this.presenceNews(`${personLabel(u, orgs)} left`)
    setText(this.drawerBtn, `People (${people.length})`)
  }

  private updateConn(patch: Partial<ConnectionState>): void {
    this.conn = { ...this.conn, ...patch, pending: this.pending.value }
    const view = describeConnection(this.conn)
    setText(this.statusEl, view.label)
    setAttr(this.statusEl, 'data-state', view.state)
    setAttr(this.statusEl, 'data-pending', String(this.conn.pending))
    setAttr(this.statusEl, 'data-tone', view.tone)
    // Speak state changes, not every change of the pending count.
    if (view.state !== this.lastAnnouncedState && view.state !== 'syncing' && view.state !== 'connecting') {
      if (this.lastAnnouncedState || view.state !== 'connected') this.announcer.say(view.state === 'connected' ? 'Connected' : view.label)
      this.lastAnnouncedState = view.state
    }
  }

  destroy(): void {
    this.draftsPanel?.destroy()
    for (const c of this.cleanups) c()
    this.workshop?.destroy()
    this.provider.destroy()
    this.undo.destroy()
    this.cdoc.doc.destroy()
  }
}
