// Short messages for things that happened without the user's focus on them
// (a refused edit, a copied link). Errors also go to the assertive region.
import { h } from './dom'

export type ToastKind = 'info' | 'error'

export function toast(message: string, kind: ToastKind = 'info', ms = 6000): void {
  const host = document.getElementById('toasts')
  if (!host) return
  const item = h('div', { class: `toast toast-${kind}` }, message)
  host.append(item)
  // The visible stack is not a live region; one hidden region per urgency speaks instead.
  const live = document.getElementById(kind === 'error' ? 'alerts' : 'toast-live')
  if (live) live.textContent = message
  setTimeout(() => item.remove(), ms)
}
