import { defineConfig } from 'vitest/config'

// The dev server proxies the API and WebSocket to a locally running `cocanvas serve`,
// so `npm run dev` behaves like the built SPA served by the Python server.
const backend = process.env.COCANVAS_DEV_BACKEND ?? 'http://127.0.0.1:8000'

export default defineConfig({
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    sourcemap: true,
  },
  server: {
    proxy: {
      '/api': backend,
      '/healthz': backend,
      '/ws': { target: backend.replace(/^http/, 'ws'), ws: true },
    },
  },
  test: {
    environment: 'node',
    include: ['test/**/*.test.ts'],
  },
})
