// A stock Yjs client (yjs + y-websocket's WebsocketProvider on the `ws` package) that Python tests
// drive over stdin/stdout, one JSON object per line.
//
// usage: node client.mjs <serverUrl ws://host:port/ws> <canvasId> <token>
//
// Commands (stdin), each answered with {"event":"done","req":<req>} once carried out
// (or {"event":"error","req":<req>,"message":...}):
//   {"req":1,"op":"add","id":"n1","text":"hello","block":"key-partners"}    add a note (Y.Map + Y.Text)
//   {"req":2,"op":"insert","id":"n1","index":0,"text":"abc"}                insert into a note's text
//   {"req":3,"op":"type","id":"n1","text":"abc","index":0,"delay_ms":2}    insert one char per transaction
//       (index: position of the first char, -1 = append each char at the end)
//   {"req":4,"op":"delete_text","id":"n1","index":0,"length":2}
//   {"req":5,"op":"delete","id":"n1"}                                        delete a note
//   {"req":6,"op":"dump","roots":[...]} -> {"event":"dump","req":6,"doc":{root: JSON, ...}} (the schema's roots)
//   {"req":7,"op":"awareness","state":{...}}   set the local awareness state (null clears it)
//   {"req":9,"op":"cursor_moves","count":50,"delay_ms":2}  move the cursor: one awareness update a step
//   {"req":10,"op":"delete_substring","id":"n1","text":"abc"}  delete the last occurrence of a string
//   {"req":8,"op":"close"}           destroy the provider and exit
// Events (stdout):
//   {"event":"ready","clientID":n}, {"event":"status","status":...}, {"event":"synced"},
//   {"event":"awareness","added":[..],"updated":[..],"removed":[..],"states":{id: state}},
//   {"event":"connection-close","code":n,"reason":s}
//   {"event":"frame","hex":...} for every frame received, when YCLIENT_TRACE is set

import { createInterface } from 'node:readline'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const [serverUrl, canvasId, token] = process.argv.slice(2)
if (!serverUrl || !canvasId) {
  process.stderr.write('usage: node client.mjs <serverUrl> <canvasId> [token]\n')
  process.exit(2)
}

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
// The test process went away: nobody is listening any more.
process.stdout.on('error', () => process.exit(0))

const doc = new Y.Doc()
const notes = doc.getMap('notes')
const params = token ? { token } : {}
// YCLIENT_TRACE=1: report every frame received, as hex, before the provider handles it.
class TracingWebSocket extends WebSocket {
  constructor (...args) {
    super(...args)
    this.addEventListener('message', (event) => {
      emit({ event: 'frame', hex: Buffer.from(event.data).toString('hex') })
    })
  }
}

const provider = new WebsocketProvider(serverUrl, canvasId, doc, {
  WebSocketPolyfill: process.env.YCLIENT_TRACE ? TracingWebSocket : WebSocket,
  params,
  disableBc: true
})

emit({ event: 'ready', clientID: doc.clientID })

provider.on('status', ({ status }) => emit({ event: 'status', status }))
provider.on('sync', (synced) => { if (synced) emit({ event: 'synced' }) })
provider.on('connection-close', (event) => {
  emit({ event: 'connection-close', code: event ? event.code : null, reason: event ? event.reason : '' })
})

const awarenessStates = () => {
  const out = {}
  for (const [id, state] of provider.awareness.getStates()) out[id] = state
  return out
}

provider.awareness.on('change', ({ added, updated, removed }) => {
  emit({ event: 'awareness', added, updated, removed, states: awarenessStates() })
})

const textOf = (id) => {
  const note = notes.get(id)
  if (!note) throw new Error(`no note ${id}`)
  const text = note.get('text')
  if (!(text instanceof Y.Text)) throw new Error(`note ${id} has no Y.Text`)
  return text
}

let closing = false

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const handlers = {
  add: ({ id, text = '', block = 'key-partners', org = '' }) => {
    doc.transact(() => {
      const note = new Y.Map()
      notes.set(id, note)
      note.set('block', block)
      note.set('text', new Y.Text(text))
      note.set('org', org)
      note.set('x', 0.5)
      note.set('y', 0.5)
    })
  },
  insert: ({ id, index, text }) => {
    textOf(id).insert(index, text)
  },
  type: async ({ id, text, index = -1, delay_ms: delayMs = 1 }) => {
    // Like a caret in an editor: after the first character, keep typing right after the last
    // character typed, wherever concurrent edits have moved it (a relative position).
    const ytext = textOf(id)
    let caret = null
    for (const ch of text) {
      let pos
      if (index < 0) pos = ytext.length
      else if (caret === null) pos = Math.min(index, ytext.length)
      else pos = Y.createAbsolutePositionFromRelativePosition(caret, doc).index
      ytext.insert(pos, ch)
      caret = Y.createRelativePositionFromTypeIndex(ytext, pos + 1, -1)
      await sleep(delayMs)
    }
  },
  delete_text: ({ id, index, length }) => {
    textOf(id).delete(index, length)
  },
  delete: ({ id }) => {
    notes.delete(id)
  },
  dump: ({ req, roots }) => {
    const out = {}
    for (const name of roots) out[name] = doc.getMap(name).toJSON()
    emit({ event: 'dump', req, doc: out })
  },
  awareness: ({ state }) => {
    provider.awareness.setLocalState(state)
  },
  cursor_moves: async ({ count = 50, delay_ms: delayMs = 2 }) => {
    // A pointer moving across the canvas: one awareness update per step.
    for (let i = 0; i < count; i++) {
      provider.awareness.setLocalStateField('cursor', { x: i / count, y: 0.5 })
      await sleep(delayMs)
    }
  },
  delete_substring: ({ id, text }) => {
    // Delete the last occurrence of `text`, wherever concurrent edits have moved it.
    const ytext = textOf(id)
    const index = ytext.toString().lastIndexOf(text)
    if (index < 0) throw new Error(`"${text}" not in note ${id}`)
    ytext.delete(index, text.length)
  },
  close: () => {
    closing = true
    provider.destroy()
    doc.destroy()
    emit({ event: 'closed' })
    setTimeout(() => process.exit(0), 20)
  }
}

// Commands run one after another, in the order they arrive.
let chain = Promise.resolve()
const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => {
  if (!line.trim()) return
  chain = chain.then(async () => {
    let cmd
    try {
      cmd = JSON.parse(line)
      const handler = handlers[cmd.op]
      if (!handler) throw new Error(`unknown op ${cmd.op}`)
      await handler(cmd)
      emit({ event: 'done', req: cmd.req ?? null, op: cmd.op })
    } catch (err) {
      emit({ event: 'error', req: cmd ? cmd.req ?? null : null, message: String(err && err.message ? err.message : err) })
    }
  })
})
rl.on('close', () => {
  // stdin closed (the test process went away): leave like a closed tab.
  chain.then(() => {
    if (!closing) provider.destroy()
    process.exit(0)
  })
})
