// @vitest-environment jsdom
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { applyDelta, bindTextarea, diffToDelta, transformIndex } from '../src/textbinding'

describe('diffToDelta', () => {
  it('turns an insertion into retain + insert', () => {
    expect(diffToDelta('hello world', 'hello big world')).toEqual([{ retain: 6 }, { insert: 'big ' }])
  })

  it('turns a deletion into retain + delete', () => {
    expect(diffToDelta('hello big world', 'hello world')).toEqual([{ retain: 6 }, { delete: 4 }])
  })

  it('turns a replacement into delete + insert at the changed range only', () => {
    expect(diffToDelta('abc', 'axc')).toEqual([{ retain: 1 }, { delete: 1 }, { insert: 'x' }])
  })

  it('is empty when nothing changed', () => {
    expect(diffToDelta('same', 'same')).toEqual([])
  })

  it('uses the caret to place an ambiguous insertion (typing "a" before "aa")', () => {
    expect(diffToDelta('aa', 'aaa', 1)).toEqual([{ insert: 'a' }])
    expect(diffToDelta('aa', 'aaa', 3)).toEqual([{ retain: 2 }, { insert: 'a' }])
  })

  it('uses the caret to place an ambiguous deletion (backspace in "aa")', () => {
    expect(diffToDelta('aa', 'a', 0)).toEqual([{ delete: 1 }])
  })

  it('never splits a surrogate pair', () => {
    // Replacing one emoji by another shares the high surrogate; the delta must still swap whole characters.
    const before = 'x😀y'
    const after = 'x😃y'
    const delta = diffToDelta(before, after)
    expect(delta).toEqual([{ retain: 1 }, { delete: 2 }, { insert: '😃' }])
  })

  it('round-trips random edits', () => {
    const alphabet = 'ab c😀\n'
    let seed = 7
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    }
    const randomString = (): string => Array.from({ length: rnd(12) }, () => alphabet[rnd(alphabet.length)]).join('')
    for (let i = 0; i < 500; i++) {
      const a = randomString()
      const b = randomString()
      const delta = diffToDelta(a, b, rnd(b.length + 1))
      expect(applyDelta(a, delta)).toBe(b)
    }
  })
})

describe('transformIndex', () => {
  it('shifts a caret after an insertion before it', () => {
    expect(transformIndex(5, [{ insert: 'abc' }])).toBe(8)
  })
  it('keeps a caret before a later insertion', () => {
    expect(transformIndex(2, [{ retain: 4 }, { insert: 'abc' }])).toBe(2)
  })
  it('pulls a caret back over a deletion and clamps inside it', () => {
    expect(transformIndex(6, [{ retain: 1 }, { delete: 3 }])).toBe(3)
    expect(transformIndex(2, [{ retain: 1 }, { delete: 3 }])).toBe(1)
  })
})

function type(el: HTMLTextAreaElement, at: number, text: string): void {
  el.focus()
  el.value = el.value.slice(0, at) + text + el.value.slice(at)
  el.setSelectionRange(at + text.length, at + text.length)
  el.dispatchEvent(new Event('input'))
}

function sync(a: Y.Doc, b: Y.Doc): void {
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)))
  Y.applyUpdate(a, Y.encodeStateAsUpdate(b, Y.encodeStateVector(a)))
}

describe('bindTextarea', () => {
  it('merges concurrent typing in one note character by character', () => {
    const docA = new Y.Doc()
    const docB = new Y.Doc()
    docA.getMap('notes').set('n', new Y.Text('Hello world'))
    sync(docA, docB)
    const textA = docA.getMap('notes').get('n') as Y.Text
    const textB = docB.getMap('notes').get('n') as Y.Text
    const elA = document.createElement('textarea')
    const elB = document.createElement('textarea')
    document.body.append(elA, elB)
    bindTextarea(elA, textA, 'A')
    bindTextarea(elB, textB, 'B')

    type(elA, 5, ',') // "Hello, world" — offline on A
    type(elB, 11, '!') // "Hello world!" — offline on B
    sync(docA, docB)

    expect(textA.toString()).toBe('Hello, world!')
    expect(elA.value).toBe('Hello, world!')
    expect(elB.value).toBe('Hello, world!')
  })

  it('keeps the local caret in place when a remote edit lands before it', () => {
    const doc = new Y.Doc()
    const text = doc.getMap('notes').set('n', new Y.Text('world')) as Y.Text
    const el = document.createElement('textarea')
    document.body.append(el)
    bindTextarea(el, text, 'local')
    el.focus()
    el.setSelectionRange(5, 5)
    doc.transact(() => text.insert(0, 'hello '), 'remote')
    expect(el.value).toBe('hello world')
    expect(el.selectionStart).toBe(11)
  })

  it('writes local input with the given origin (so undo tracks it)', () => {
    const doc = new Y.Doc()
    const text = doc.getMap('notes').set('n', new Y.Text('')) as Y.Text
    const el = document.createElement('textarea')
    document.body.append(el)
    const origin = { me: true }
    const undo = new Y.UndoManager(doc.getMap('notes'), { trackedOrigins: new Set([origin]) })
    bindTextarea(el, text, origin)
    type(el, 0, 'abc')
    expect(text.toString()).toBe('abc')
    undo.undo()
    expect(text.toString()).toBe('')
    expect(el.value).toBe('')
  })

  it('stops updating after destroy', () => {
    const doc = new Y.Doc()
    const text = doc.getMap('notes').set('n', new Y.Text('a')) as Y.Text
    const el = document.createElement('textarea')
    const b = bindTextarea(el, text, 'x')
    b.destroy()
    text.insert(1, 'b')
    expect(el.value).toBe('a')
  })
})
