// Binds a <textarea> to a Y.Text with minimal deltas, so two people typing in the same
// note merge character by character instead of overwriting each other's whole text.
import * as Y from 'yjs'

export type DeltaOp = { retain: number } | { delete: number } | { insert: string }

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff
}

/**
 * The single-range edit turning `before` into `after`, as a Yjs delta.
 * `cursor` (the caret in `after`, if known) breaks ties: typing "a" into "aa" at the
 * start must insert at 0, not at 2, or a concurrent edit lands on the wrong side.
 * Offsets never split a UTF-16 surrogate pair, so emoji survive partial merges.
 */
export function diffToDelta(before: string, after: string, cursor?: number): DeltaOp[] {
  if (before === after) return []
  const minLen = Math.min(before.length, after.length)
  let prefix = 0
  while (prefix < minLen && before.charCodeAt(prefix) === after.charCodeAt(prefix)) prefix++
  if (cursor !== undefined) {
    // The changed range in `after` ends at the caret for typing/pasting/backspace.
    const growth = Math.max(0, after.length - before.length)
    prefix = Math.min(prefix, Math.max(0, cursor - growth))
  }
  if (prefix > 0 && prefix < after.length && isLowSurrogate(after.charCodeAt(prefix))) prefix--
  else if (prefix > 0 && prefix < before.length && isLowSurrogate(before.charCodeAt(prefix))) prefix--

  let suffix = 0
  const maxSuffix = minLen - prefix
  while (
    suffix < maxSuffix &&
    before.charCodeAt(before.length - 1 - suffix) === after.charCodeAt(after.length - 1 - suffix)
  ) {
    suffix++
  }
  if (suffix > 0) {
    const cut = after.length - suffix
    if (cut > 0 && isHighSurrogate(after.charCodeAt(cut - 1))) suffix--
  }

  const deleted = before.length - prefix - suffix
  const inserted = after.slice(prefix, after.length - suffix)
  const ops: DeltaOp[] = []
  if (prefix > 0) ops.push({ retain: prefix })
  if (deleted > 0) ops.push({ delete: deleted })
  if (inserted.length > 0) ops.push({ insert: inserted })
  return ops
}

export function applyDelta(text: string, delta: readonly DeltaOp[]): string {
  let pos = 0
  let out = ''
  for (const op of delta) {
    if ('retain' in op) {
      out += text.slice(pos, pos + op.retain)
      pos += op.retain
    } else if ('delete' in op) {
      pos += op.delete
    } else {
      out += op.insert
    }
  }
  return out + text.slice(pos)
}

/**
 * Where a caret at `index` ends up after a remote `delta`. Inserts exactly at the caret
 * push it right unless `sticky` is 'left' (the selection start keeps its place).
 */
export function transformIndex(index: number, delta: readonly DeltaOp[], sticky: 'left' | 'right' = 'right'): number {
  let pos = 0 // position in the old text
  let shift = 0
  for (const op of delta) {
    if (pos > index) break
    if ('retain' in op) {
      pos += op.retain
    } else if ('delete' in op) {
      const end = pos + op.delete
      if (end <= index) shift -= op.delete
      else shift -= index - pos
      pos = end
    } else {
      if (pos < index || (pos === index && sticky === 'right')) shift += op.insert.length
    }
  }
  return Math.max(0, index + shift)
}

type TextEvent = Y.YTextEvent

function eventDelta(event: TextEvent): DeltaOp[] {
  const out: DeltaOp[] = []
  for (const op of event.delta) {
    if (op.retain !== undefined) out.push({ retain: op.retain })
    else if (op.delete !== undefined) out.push({ delete: op.delete })
    else if (typeof op.insert === 'string') out.push({ insert: op.insert })
  }
  return out
}

export interface TextBinding {
  destroy(): void
}

/**
 * Keeps `el.value` and `ytext` equal. Local input becomes a delta applied with `origin`
 * (so the UndoManager tracks it); remote changes rewrite the value and carry the caret
 * through the delta so the local typist is not thrown around.
 */
export function bindTextarea(
  el: HTMLTextAreaElement,
  ytext: Y.Text,
  origin: unknown,
  onLocalChange?: () => void,
): TextBinding {
  let composing = false
  el.value = ytext.toString()

  const onInput = (): void => {
    if (composing) return
    const before = ytext.toString()
    const after = el.value
    const delta = diffToDelta(before, after, el.selectionEnd ?? undefined)
    if (delta.length === 0) return
    const doc = ytext.doc
    const apply = (): void => {
      ytext.applyDelta(delta)
    }
    if (doc) doc.transact(apply, origin)
    else apply()
    onLocalChange?.()
  }

  const onCompositionStart = (): void => {
    composing = true
  }
  const onCompositionEnd = (): void => {
    composing = false
    onInput()
  }

  const observer = (event: TextEvent, tr: Y.Transaction): void => {
    const now = ytext.toString()
    if (el.value === now) return
    if (tr.origin === origin && tr.local) return
    const delta = eventDelta(event)
    const focused = el.ownerDocument.activeElement === el
    const start = el.selectionStart
    const end = el.selectionEnd
    const dir = el.selectionDirection
    // Out of sync for another reason (e.g. IME text not yet committed): take the doc's value.
    el.value = now
    if (focused && start !== null && end !== null) {
      const collapsed = start === end
      const s = transformIndex(start, delta, collapsed ? 'right' : 'left')
      const e = collapsed ? s : transformIndex(end, delta, 'right')
      el.setSelectionRange(s, e, dir ?? 'none')
    }
  }

  el.addEventListener('input', onInput)
  el.addEventListener('compositionstart', onCompositionStart)
  el.addEventListener('compositionend', onCompositionEnd)
  ytext.observe(observer)
  return {
    destroy(): void {
      el.removeEventListener('input', onInput)
      el.removeEventListener('compositionstart', onCompositionStart)
      el.removeEventListener('compositionend', onCompositionEnd)
      ytext.unobserve(observer)
    },
  }
}
