import './styles.css'
import { renderCanvasPage, type CanvasPage } from './canvaspage'
import { renderInvitePage } from './invitepage'
import { renderListPage } from './listpage'
import { interceptLinks, onNavigate, parseRoute } from './router'
import { h } from './dom'

const root = document.getElementById('app')!
let current: CanvasPage | null = null

function show(): void {
  current?.destroy()
  current = null
  const route = parseRoute(location.pathname, location.search)
  switch (route.kind) {
    case 'list':
      document.title = 'CoCanvas'
      renderListPage(root)
      break
    case 'canvas':
      current = renderCanvasPage(root, route.id)
      break
    case 'drafts':
      current = renderCanvasPage(root, route.id, { org: route.org })
      break
    case 'invite':
      document.title = 'Join a canvas — CoCanvas'
      renderInvitePage(root, route.id)
      break
    case 'notfound':
      root.replaceChildren(h('main', { id: 'main', class: 'narrow' }, h('h1', {}, 'Page not found'), h('p', {}, h('a', { href: '/' }, 'All canvases'))))
  }
}

interceptLinks(document.body)
onNavigate(show)
show()
