// Batches work to one run per animation frame: many remote updates (and cursor moves)
// arriving within a frame cost one flush. A timer backs the frame request up, because
// browsers pause requestAnimationFrame in hidden tabs and the doc must still catch up.
export class FrameScheduler {
  private raf = 0
  private timer: ReturnType<typeof setTimeout> | null = null
  private cursorJob: (() => void) | null = null
  private cursorRaf = 0
  private cursorTimer: ReturnType<typeof setTimeout> | null = null

  constructor(private readonly run: () => void) {}

  request(): void {
    if (this.raf || this.timer) return
    const go = (): void => {
      this.cancel()
      this.run()
    }
    if (typeof requestAnimationFrame === 'function') this.raf = requestAnimationFrame(go)
    this.timer = setTimeout(go, 250)
  }

  cancel(): void {
    if (this.raf) cancelAnimationFrame(this.raf)
    if (this.timer) clearTimeout(this.timer)
    this.raf = 0
    this.timer = null
  }

  /** Cursor redraws: at most one per frame, the latest wins. */
  cursors(job: () => void): void {
    this.cursorJob = job
    if (this.cursorRaf || this.cursorTimer) return
    const go = (): void => {
      if (this.cursorRaf) cancelAnimationFrame(this.cursorRaf)
      if (this.cursorTimer) clearTimeout(this.cursorTimer)
      this.cursorRaf = 0
      this.cursorTimer = null
      const j = this.cursorJob
      this.cursorJob = null
      j?.()
    }
    if (typeof requestAnimationFrame === 'function') this.cursorRaf = requestAnimationFrame(go)
    this.cursorTimer = setTimeout(go, 250)
  }
}
