// Canvas list and the "new canvas" form.
import { ApiError, TEMPLATES, api, templateLabel, type CanvasSummary, type TemplateId } from './api'
import { h } from './dom'
import { canvasPath, navigate } from './router'
import { forgetOperatorKey, knownCanvasIds, loadOperatorKey, operatorKeyPrompt, saveOperatorKey, saveToken } from './session'

function created(v: number | string): string {
  const d = typeof v === 'number' ? new Date(v < 1e12 ? v * 1000 : v) : new Date(v)
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString()
}

/** Org names from the textarea: one per line (or comma-separated), trimmed, de-duplicated. */
export function parseOrgNames(raw: string): string[] {
  const seen = new Set<string>()
  const out: string[] = []
  for (const part of raw.split(/[\n,]/)) {
    const name = part.trim()
    if (name && !seen.has(name.toLowerCase())) {
      seen.add(name.toLowerCase())
      out.push(name)
    }
  }
  return out
}

export function renderListPage(root: HTMLElement): void {
  const listHost = h('div', { 'aria-live': 'polite', 'aria-busy': 'true' }, h('p', {}, 'Loading canvases…'))
  const error = h('p', { class: 'form-error', role: 'alert' })

  // Operator key: only shown once the server asks for it (401) or while one is saved.
  const keyInput = h('input', {
    id: 'operator-key',
    name: 'operator_key',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    'aria-describedby': 'operator-key-help',
  })
  const keyHelp = h('p', { id: 'operator-key-help', class: 'help' })
  const keyError = h('p', { id: 'operator-key-error', class: 'form-error', role: 'alert' })
  const forgetBtn = h('button', { type: 'button', class: 'btn' }, 'Forget key')
  const keyForm = h(
    'form',
    { class: 'card operator-key', 'aria-labelledby': 'operator-key-heading', hidden: true },
    h('h2', { id: 'operator-key-heading' }, 'Operator access'),
    h('label', { for: 'operator-key' }, 'Operator key'),
    keyInput,
    keyHelp,
    keyError,
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Use key'), ' ', forgetBtn),
  )
  /** Shows the key form in the state the last call left it: saved key, key needed, key refused. */
  const showKeyForm = (prompt: 'none' | 'needed' | 'wrong'): void => {
    const saved = loadOperatorKey()
    keyForm.hidden = prompt === 'none' && !saved
    forgetBtn.hidden = !saved
    keyInput.setAttribute('aria-invalid', String(prompt === 'wrong'))
    keyHelp.textContent =
      prompt === 'none'
        ? 'This browser uses the saved operator key to list and create canvases.'
        : 'This server needs its operator key (COCANVAS_ADMIN_TOKEN) to list and create canvases. It is kept in this browser until you forget it.'
    keyError.textContent = prompt === 'wrong' ? 'That operator key was not accepted. Check it and enter it again.' : ''
  }
  keyForm.addEventListener('submit', (e) => {
    e.preventDefault()
    if (!keyInput.value.trim()) {
      keyError.textContent = 'Enter the operator key.'
      keyInput.focus()
      return
    }
    saveOperatorKey(keyInput.value)
    keyInput.value = ''
    void loadList(true)
  })
  forgetBtn.addEventListener('click', () => {
    forgetOperatorKey()
    keyInput.value = ''
    void loadList(false).then(() => {
      if (!keyForm.hidden) keyInput.focus()
    })
  })

  const title = h('input', { id: 'new-title', name: 'title', required: true, maxlength: 200, autocomplete: 'off' })
  const template = h('select', { id: 'new-template', name: 'template' })
  for (const t of TEMPLATES) template.append(h('option', { value: t.id }, t.label))
  const orgs = h('textarea', {
    id: 'new-orgs',
    name: 'orgs',
    rows: 3,
    'aria-describedby': 'new-orgs-help',
  })
  const orgsHelp = h('p', { id: 'new-orgs-help', class: 'help' })
  const name = h('input', { id: 'new-name', name: 'facilitator_name', autocomplete: 'name', maxlength: 100 })
  const syncOrgsHelp = (): void => {
    const partner = template.value === 'partner-co-creation'
    orgsHelp.textContent = partner
      ? 'One partner organization per line — each gets its own value map. At least two.'
      : 'Optional: the organizations taking part, one per line (their notes get their colour and initials).'
    if (partner && !orgs.value.trim()) orgs.value = 'Partner A\nPartner B'
  }
  template.addEventListener('change', syncOrgsHelp)
  syncOrgsHelp()

  const form = h(
    'form',
    { class: 'card new-canvas', 'aria-labelledby': 'new-heading' },
    h('h2', { id: 'new-heading' }, 'New canvas'),
    h('label', { for: 'new-title' }, 'Title'),
    title,
    h('label', { for: 'new-template' }, 'Template'),
    template,
    h('label', { for: 'new-orgs' }, 'Organizations'),
    orgs,
    orgsHelp,
    h('label', { for: 'new-name' }, 'Your name (facilitator)'),
    name,
    error,
    h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create canvas'),
  )
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    error.textContent = ''
    const orgNames = parseOrgNames(orgs.value)
    const tpl = template.value as TemplateId
    if (tpl === 'partner-co-creation' && orgNames.length < 2) {
      error.textContent = 'A partner co-creation canvas needs at least two partner organizations.'
      orgs.focus()
      return
    }
    void (async () => {
      const key = loadOperatorKey()
      try {
        const c = await api.createCanvas(
          {
            title: title.value.trim() || 'Untitled canvas',
            template: tpl,
            orgs: orgNames.map((n) => ({ name: n })),
            facilitator_name: name.value.trim() || 'Facilitator',
          },
          key,
        )
        saveToken(c.id, c.facilitator_token)
        navigate(canvasPath(c.id))
      } catch (err) {
        const prompt = err instanceof ApiError ? operatorKeyPrompt(err.status, key) : 'none'
        if (prompt !== 'none') {
          showKeyForm(prompt)
          error.textContent =
            prompt === 'wrong'
              ? 'Could not create the canvas: the saved operator key was not accepted. Enter the right key above, then create again.'
              : 'Could not create the canvas: this server needs the operator key. Enter it above, then create again.'
          keyInput.focus()
          return
        }
        error.textContent = `Could not create the canvas: ${err instanceof ApiError ? err.detail : String(err)}`
      }
    })()
  })

  root.replaceChildren(
    h(
      'div',
      { class: 'page list-page' },
      h('header', { class: 'topbar' }, h('h1', {}, 'CoCanvas')),
      h(
        'main',
        { id: 'main', class: 'list-main' },
        keyForm,
        h('section', { class: 'card', 'aria-labelledby': 'list-heading' }, h('h2', { id: 'list-heading' }, 'Canvases'), listHost),
        form,
      ),
    ),
  )

  /** (Re)loads the list with the saved operator key; `focusOnRefusal` after the user typed a key. */
  async function loadList(focusOnRefusal: boolean): Promise<void> {
    const key = loadOperatorKey()
    listHost.setAttribute('aria-busy', 'true')
    try {
      const items = await api.listCanvases(key)
      showKeyForm('none')
      listHost.replaceChildren(renderList(items))
      if (key) error.textContent = ''
    } catch (err) {
      const prompt = err instanceof ApiError ? operatorKeyPrompt(err.status, key) : 'none'
      if (prompt !== 'none') {
        showKeyForm(prompt)
        listHost.replaceChildren(h('p', {}, 'Enter the operator key to see and create canvases.'))
        if (focusOnRefusal) keyInput.focus()
      } else {
        listHost.replaceChildren(h('p', { class: 'form-error' }, `Could not load canvases: ${err instanceof ApiError ? err.detail : String(err)}`))
      }
    } finally {
      listHost.setAttribute('aria-busy', 'false')
    }
  }
  void loadList(false)
}

function renderList(items: CanvasSummary[]): HTMLElement {
  if (!items.length) return h('p', {}, 'No canvases yet — create one.')
  const mine = knownCanvasIds()
  const sorted = [...items].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at), undefined, { numeric: true }))
  return h(
    'ul',
    { class: 'canvas-list' },
    ...sorted.map((c) =>
      h(
        'li',
        { 'data-canvas-id': c.id },
        h('a', { href: canvasPath(c.id) }, c.title || 'Untitled canvas'),
        h('span', { class: 'muted' }, ` · ${templateLabel(c.template)} · ${created(c.created_at)}`),
        mine.has(c.id) ? h('span', { class: 'tag' }, 'you have access') : h('span', { class: 'tag tag-muted' }, 'invite needed'),
      ),
    ),
  )
}
