// Facilitator panel: create, copy and revoke invite links per organization.
import { ApiError, api, type Invite } from './api'
import { h } from './dom'
import type { OrgView } from './model'
import type { Role } from './session'
import { toast } from './toast'

const EXPIRY: ReadonlyArray<{ s: number; label: string }> = [
  { s: 3600 * 4, label: '4 hours' },
  { s: 86400, label: '1 day' },
  { s: 86400 * 7, label: '7 days' },
  { s: 86400 * 30, label: '30 days' },
]

function when(v: number | string): string {
  const d = typeof v === 'number' ? new Date(v < 1e12 ? v * 1000 : v) : new Date(v)
  return Number.isNaN(d.getTime()) ? String(v) : d.toLocaleString()
}

export function absoluteInviteUrl(url: string, origin: string = location.origin): string {
  return new URL(url, origin).toString()
}

async function copy(text: string, fallbackInput: HTMLInputElement): Promise<void> {
  try {
    await navigator.clipboard.writeText(text)
    toast('Invite link copied')
  } catch {
    // Clipboard API needs a secure context; selecting the text lets the user press Ctrl+C.
    fallbackInput.focus()
    fallbackInput.select()
    toast('Press Ctrl+C to copy the selected link')
  }
}

export class InvitePanel {
  readonly el: HTMLElement
  private readonly list: HTMLElement
  private readonly orgSelect: HTMLSelectElement
  private readonly createBtn: HTMLButtonElement
  private readonly noOrgHint: HTMLElement
  private invites: Invite[] = []
  private orgs = new Map<string, OrgView>()
  private refreshTimer: ReturnType<typeof setTimeout> | null = null

  constructor(
    private readonly canvasId: string,
    private readonly token: string,
  ) {
    this.orgSelect = h('select', { id: 'invite-org', name: 'org' })
    this.createBtn = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create invite link')
    this.noOrgHint = h('p', { class: 'hint', hidden: true }, 'Add an organization below first: every invite link is for one organization.')
    const roleSelect = h(
      'select',
      { id: 'invite-role', name: 'role' },
      h('option', { value: 'editor' }, 'Editor'),
      h('option', { value: 'viewer' }, 'Viewer'),
      h('option', { value: 'facilitator' }, 'Facilitator'),
    )
    const expiry = h('select', { id: 'invite-expiry', name: 'expiry' })
    for (const e of EXPIRY) expiry.append(h('option', { value: e.s, selected: e.s === 86400 }, e.label))
    const maxUses = h('input', { id: 'invite-max', name: 'max_uses', type: 'number', min: 1, placeholder: 'unlimited' })
    const form = h(
      'form',
      { class: 'invite-form' },
      h('label', { for: 'invite-org' }, 'Organization'),
      this.orgSelect,
      h('label', { for: 'invite-role' }, 'Role'),
      roleSelect,
      h('label', { for: 'invite-expiry' }, 'Expires after'),
      expiry,
      h('label', { for: 'invite-max' }, 'Max. uses'),
      maxUses,
      this.createBtn,
      this.noOrgHint,
    )
    form.addEventListener('submit', (e) => {
      e.preventDefault()
      if (!this.orgSelect.value) return
      const max = maxUses.value.trim() ? Number(maxUses.value) : null
      void this.create(this.orgSelect.value, roleSelect.value as Role, Number(expiry.value), max)
    })
    this.list = h('ul', { class: 'invite-list', 'aria-label': 'Invite links' })
    // A partner joining late gets its own org (and, on a partner canvas, its own value map).
    const orgName = h('input', { id: 'add-org-name', name: 'org_name', maxlength: 80, autocomplete: 'off' })
    const orgForm = h(
      'form',
      { class: 'add-org-form' },
      h('label', { for: 'add-org-name' }, 'Add an organization'),
      h('div', { class: 'row' }, orgName, h('button', { type: 'submit', class: 'btn' }, 'Add')),
    )
    orgForm.addEventListener('submit', (e) => {
      e.preventDefault()
      const name = orgName.value.trim()
      if (!name) return
      void (async () => {
        try {
          const org = await api.addOrg(this.canvasId, this.token, name)
          orgName.value = ''
          toast(`${org.name} added`)
        } catch (err) {
          toast(`Could not add the organization: ${err instanceof ApiError ? err.detail : String(err)}`, 'error')
        }
      })()
    })
    // Use counts change when someone redeems a link: the page refreshes the list when a new
    // person joins (joinedSomeone), and this button does it by hand.
    const refreshBtn = h('button', { type: 'button', class: 'btn btn-small', id: 'invites-refresh' }, 'Refresh use counts')
    refreshBtn.addEventListener('click', () => void this.refresh())
    this.el = h(
      'section',
      { class: 'panel-side invites', 'aria-labelledby': 'invites-heading' },
      h('h2', { id: 'invites-heading' }, 'Invite links'),
      form,
      this.list,
      refreshBtn,
      orgForm,
    )
    void this.refresh()
  }

  setOrgs(orgs: Map<string, OrgView>): void {
    const same = orgs.size === this.orgs.size && [...orgs].every(([k, v]) => this.orgs.get(k)?.name === v.name)
    this.orgs = orgs
    if (same && this.orgSelect.options.length) return
    const current = this.orgSelect.value
    this.orgSelect.replaceChildren(
      ...[...orgs.values()].map((o) => h('option', { value: o.id, selected: o.id === current }, o.name)),
    )
    // An invite always names an organization (the server answers 422 otherwise).
    this.createBtn.disabled = orgs.size === 0
    this.noOrgHint.hidden = orgs.size > 0
    this.renderList()
  }

  private async create(orgId: string, role: Role, expiresIn: number, maxUses: number | null): Promise<void> {
    try {
      const inv = await api.createInvite(this.canvasId, this.token, {
        org_id: orgId,
        role,
        expires_in_s: expiresIn,
        max_uses: maxUses,
      })
      this.invites = [inv, ...this.invites.filter((i) => i.id !== inv.id)]
      this.renderList()
      toast(`Invite link created for ${this.orgs.get(orgId)?.name ?? 'no organization'}`)
    } catch (e) {
      toast(`Could not create the invite: ${e instanceof ApiError ? e.detail : String(e)}`, 'error')
    }
  }

  /** A person new to this canvas joined: most likely through one of these links. */
  joinedSomeone(): void {
    if (this.refreshTimer) return
    // Several joins at once (a workshop starting) cost one request.
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null
      void this.refresh()
    }, 300)
  }

  async refresh(): Promise<void> {
    try {
      this.invites = await api.listInvites(this.canvasId, this.token)
      this.renderList()
    } catch (e) {
      // A rejected token is already explained by the connection status; say it once.
      if (!(e instanceof ApiError) || ![401, 403, 404].includes(e.status)) {
        toast(`Could not load invite links: ${e instanceof ApiError ? e.detail : String(e)}`, 'error')
      }
    }
  }

  private async revoke(inv: Invite): Promise<void> {
    try {
      await api.revokeInvite(this.canvasId, this.token, inv.id)
      this.invites = this.invites.map((i) => (i.id === inv.id ? { ...i, revoked: true } : i))
      this.renderList()
      toast('Invite link revoked')
    } catch (e) {
      toast(`Could not revoke: ${e instanceof ApiError ? e.detail : String(e)}`, 'error')
    }
  }

  private renderList(): void {
    const items = this.invites.map((inv) => {
      const url = absoluteInviteUrl(inv.url)
      const org = this.orgs.get(inv.org_id)?.name ?? (inv.org_id || 'No organization')
      const input = h('input', { class: 'invite-url', readonly: true, value: url, 'aria-label': `Invite link for ${org}, ${inv.role}` })
      const copyBtn = h('button', { type: 'button', class: 'btn btn-small' }, 'Copy')
      copyBtn.setAttribute('aria-label', `Copy invite link for ${org}, ${inv.role}`)
      copyBtn.addEventListener('click', () => void copy(url, input))
      const revokeBtn = h('button', { type: 'button', class: 'btn btn-small btn-danger', disabled: inv.revoked }, inv.revoked ? 'Revoked' : 'Revoke')
      revokeBtn.setAttribute('aria-label', `Revoke invite link for ${org}, ${inv.role}`)
      revokeBtn.addEventListener('click', () => void this.revoke(inv))
      const uses = inv.max_uses === null ? `${inv.uses} ${inv.uses === 1 ? 'use' : 'uses'}` : `${inv.uses}/${inv.max_uses} uses`
      return h(
        'li',
        { class: inv.revoked ? 'invite revoked' : 'invite', 'data-invite-id': inv.id },
        h('div', { class: 'invite-meta' }, h('strong', {}, org), ` · ${inv.role} · ${uses} · until ${when(inv.expires_at)}`),
        h('div', { class: 'invite-actions' }, input, copyBtn, revokeBtn),
      )
    })
    if (!items.length) items.push(h('li', { class: 'muted' }, 'No invite links yet.'))
    this.list.replaceChildren(...items)
  }
}
