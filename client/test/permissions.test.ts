// @vitest-environment jsdom
import { describe, expect, it } from 'vitest'
import {
  OPERATOR_KEY,
  forgetOperatorKey,
  loadOperatorKey,
  mayAddTo,
  mayEditNote,
  operatorKeyPrompt,
  saveOperatorKey,
  type Claims,
  type Role,
} from '../src/session'

const who = (role: Role, org = 'acme'): Claims => ({ sub: 'u', name: 'U', org, role, cid: 'c', exp: Infinity })
const open = { lockedBy: '' }
const locked = { lockedBy: 'fay' }
// A partner's value-map block: it belongs to Beta, the user is from Acme.
const betaMap = { lockedBy: '', org: 'beta' }

describe('add rule (matches the server policy)', () => {
  it('lets editors and facilitators add into any unlocked block, including a partner value map', () => {
    expect(mayAddTo(who('editor'), betaMap)).toBe(true)
    expect(mayAddTo(who('editor'), open)).toBe(true)
    expect(mayAddTo(who('facilitator'), betaMap)).toBe(true)
  })

  it('keeps viewers out and locked blocks for facilitators only', () => {
    expect(mayAddTo(who('viewer'), betaMap)).toBe(false)
    expect(mayAddTo(who('viewer'), open)).toBe(false)
    expect(mayAddTo(who('editor'), locked)).toBe(false)
    expect(mayAddTo(who('facilitator'), locked)).toBe(true)
  })
})

describe('edit rule', () => {
  it('with protect_notes an editor edits only their own organization’s notes', () => {
    expect(mayEditNote(who('editor'), { org: 'acme' }, betaMap, true)).toBe(true)
    expect(mayEditNote(who('editor'), { org: 'beta' }, betaMap, true)).toBe(false)
    expect(mayEditNote(who('editor'), { org: 'beta' }, open, false)).toBe(true)
    expect(mayEditNote(who('facilitator'), { org: 'beta' }, locked, true)).toBe(true)
    expect(mayEditNote(who('editor'), { org: 'acme' }, locked, false)).toBe(false)
    expect(mayEditNote(who('viewer'), { org: 'acme' }, open, false)).toBe(false)
  })
})

describe('operator key', () => {
  it('is kept in localStorage, trimmed, and can be forgotten', () => {
    localStorage.clear()
    expect(loadOperatorKey()).toBeNull()
    saveOperatorKey('  s3cret \n')
    expect(localStorage.getItem(OPERATOR_KEY)).toBe('s3cret')
    expect(loadOperatorKey()).toBe('s3cret')
    forgetOperatorKey()
    expect(loadOperatorKey()).toBeNull()
    saveOperatorKey('   ')
    expect(localStorage.getItem(OPERATOR_KEY)).toBeNull()
  })

  it('asks for a key on 401, says "wrong" when the sent key was refused, and stays quiet otherwise', () => {
    expect(operatorKeyPrompt(401, null)).toBe('needed')
    expect(operatorKeyPrompt(401, 'bad')).toBe('wrong')
    expect(operatorKeyPrompt(403, null)).toBe('none')
    expect(operatorKeyPrompt(500, 'k')).toBe('none')
    expect(operatorKeyPrompt(200, null)).toBe('none')
  })
})
