// Modal <dialog>s: the browser traps focus and maps Escape to cancel, which is exactly
// the keyboard behaviour a confirmation or a "move to…" menu needs.
import { h } from './dom'

function openDialog<T>(
  build: (dialog: HTMLDialogElement, done: (value: T) => void) => void,
  cancelled: T,
): Promise<T> {
  const previous = document.activeElement instanceof HTMLElement ? document.activeElement : null
  const dialog = h('dialog', { class: 'dialog' })
  document.body.append(dialog)
  return new Promise<T>((resolve) => {
    let settled = false
    const done = (value: T): void => {
      if (settled) return
      settled = true
      dialog.close()
      dialog.remove()
      if (previous?.isConnected) previous.focus()
      resolve(value)
    }
    dialog.addEventListener('cancel', (e) => {
      e.preventDefault()
      done(cancelled)
    })
    build(dialog, done)
    dialog.showModal()
  })
}

export function confirmDialog(message: string, confirmLabel: string): Promise<boolean> {
  return openDialog<boolean>((dialog, done) => {
    const title = h('h2', { id: 'dialog-title' }, message)
    const cancel = h('button', { type: 'button', class: 'btn' }, 'Cancel')
    const ok = h('button', { type: 'button', class: 'btn btn-danger' }, confirmLabel)
    cancel.addEventListener('click', () => done(false))
    ok.addEventListener('click', () => done(true))
    dialog.setAttribute('aria-labelledby', 'dialog-title')
    dialog.append(title, h('div', { class: 'dialog-actions' }, cancel, ok))
    // Safer default: Enter on the focused Cancel does nothing destructive.
    queueMicrotask(() => cancel.focus())
  }, false)
}

export interface Choice {
  value: string
  label: string
  disabled?: boolean
  current?: boolean
}

export function chooseDialog(title: string, choices: readonly Choice[]): Promise<string | null> {
  return openDialog<string | null>((dialog, done) => {
    dialog.setAttribute('aria-labelledby', 'dialog-title')
    const list = h('ul', { class: 'choice-list' })
    let first: HTMLButtonElement | null = null
    for (const c of choices) {
      const label = c.current ? `${c.label} (current)` : c.label
      const btn = h('button', { type: 'button', class: 'btn choice', disabled: c.disabled || c.current }, label)
      btn.addEventListener('click', () => done(c.value))
      if (!first && !c.disabled && !c.current) first = btn
      list.append(h('li', {}, btn))
    }
    const cancel = h('button', { type: 'button', class: 'btn' }, 'Cancel')
    cancel.addEventListener('click', () => done(null))
    // Arrow keys walk the menu like a listbox; Tab still works too.
    list.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return
      const buttons = [...list.querySelectorAll<HTMLButtonElement>('button:not([disabled])')]
      const i = buttons.indexOf(document.activeElement as HTMLButtonElement)
      const next = buttons[(i + (e.key === 'ArrowDown' ? 1 : buttons.length - 1)) % buttons.length]
      next?.focus()
      e.preventDefault()
    })
    dialog.append(h('h2', { id: 'dialog-title' }, title), list, h('div', { class: 'dialog-actions' }, cancel))
    queueMicrotask(() => (first ?? cancel).focus())
  }, null)
}
