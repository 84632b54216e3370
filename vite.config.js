import { defineConfig } from 'vite';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('.', import.meta.url));
// URL prefix → folder under .cache/ (filled by scripts/setup.sh), never bundled or committed.
const SERVED = [
  { prefix: '/models/', dir: resolve(repo, '.cache/models'), type: 'application/octet-stream', what: 'model file' },
  { prefix: '/texts/', dir: resolve(repo, '.cache/texts'), type: 'text/plain; charset=utf-8', what: 'text' },
];
const port = Number(process.env.PORT) || 5173;

// Serves /models/<file> and /texts/<file> from .cache/ so the page can offer a model and sample texts.
function serveCache() {
  const handler = async (req, res, next) => {
    const { pathname } = new URL(req.url, 'http://localhost');
    const served = SERVED.find((s) => pathname.startsWith(s.prefix));
    if (!served) return next();
    const reply = (code, text) => {
      res.statusCode = code;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end(text);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method not allowed');
    let name;
    try {
      name = decodeURIComponent(pathname.slice(served.prefix.length));
    } catch {
      return reply(400, 'bad path');
    }
    const file = resolve(served.dir, name);
    // One plain file name only: no sub-folders, no '..', no hidden files.
    if (!name || /[/\\\0]/.test(name) || name.startsWith('.') || !file.startsWith(served.dir + sep)) {
      return reply(400, 'bad path');
    }
    const info = await stat(file).catch(() => null);
    if (!info?.isFile()) return reply(404, `no ${served.what} ${name}`);
    res.statusCode = 200;
    res.setHeader('Content-Type', served.type);
    res.setHeader('Content-Length', String(info.size));
    res.setHeader('Cache-Control', 'no-cache');
    if (req.method === 'HEAD') return res.end();
    const stream = createReadStream(file);
    stream.on('error', (err) => res.destroy(err));
    stream.pipe(res);
  };
  return {
    name: 'squeeze-cache',
    configureServer: (server) => void server.middlewares.use(handler),
    configurePreviewServer: (server) => void server.middlewares.use(handler),
  };
}

export default defineConfig({
  root: resolve(repo, 'www'),
  publicDir: false,
  plugins: [serveCache()],
  server: { host: '127.0.0.1', port, strictPort: true },
  preview: { host: '127.0.0.1', port, strictPort: true },
  worker: { format: 'es' },
  build: {
    outDir: resolve(repo, 'dist'),
    emptyOutDir: true,
    target: 'es2022',
  },
});
