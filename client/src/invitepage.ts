// /i/{invite}: type your name, redeem the invite, then join the canvas.
import { ApiError, api } from './api'
import { h } from './dom'
import { canvasPath, navigate } from './router'
import { saveToken } from './session'

const NAME_KEY = 'cocanvas:display-name'

export function inviteErrorText(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 404) return 'This invite link does not exist. Check the link or ask the facilitator for a new one.'
    if (err.status === 410) return 'This invite link has expired, was revoked or has been used up. Ask the facilitator for a new one.'
    if (err.status === 429) return 'Too many attempts — wait a moment and try again.'
    return `The invite could not be used: ${err.detail}`
  }
  return 'The server could not be reached. Check your connection and try again.'
}

export function renderInvitePage(root: HTMLElement, inviteId: string): void {
  let remembered = ''
  try {
    remembered = localStorage.getItem(NAME_KEY) ?? ''
  } catch {
    remembered = ''
  }
  const name = h('input', { id: 'join-name', name: 'name', required: true, maxlength: 100, autocomplete: 'name', value: remembered })
  const error = h('p', { class: 'form-error', role: 'alert' })
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Join canvas')
  const form = h(
    'form',
    { class: 'card join-form', 'aria-labelledby': 'join-heading' },
    h('h2', { id: 'join-heading' }, 'You are invited to a canvas'),
    h('label', { for: 'join-name' }, 'Your name (shown to the others)'),
    name,
    error,
    submit,
  )
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    const n = name.value.trim()
    if (!n) {
      error.textContent = 'Please type your name.'
      name.focus()
      return
    }
    submit.disabled = true
    void (async () => {
      try {
        const r = await api.redeemInvite(inviteId, n)
        try {
          localStorage.setItem(NAME_KEY, n)
        } catch {
          // remembering the name is a convenience only
        }
        saveToken(r.canvas_id, r.token)
        navigate(canvasPath(r.canvas_id))
      } catch (err) {
        error.textContent = inviteErrorText(err)
        submit.disabled = false
      }
    })()
  })
  root.replaceChildren(
    h(
      'div',
      { class: 'page' },
      h('header', { class: 'topbar' }, h('h1', {}, h('a', { href: '/' }, 'CoCanvas'))),
      h('main', { id: 'main', class: 'narrow' }, form),
    ),
  )
  name.focus()
}
