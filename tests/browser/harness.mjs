// What the browser tests and the browser benchmark share: a static server for www/ on
// 127.0.0.1, Debian's headless Chromium with a fresh profile, and the page steps several tests take.
import { createServer } from 'node:http';
import { stat, mkdtemp } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, extname, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const www = join(root, 'www');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.wasm': 'application/wasm', '.onnx': 'application/octet-stream', '.png': 'image/png',
  '.svg': 'image/svg+xml', '.webmanifest': 'application/manifest+json', '.json': 'application/json' };

/// Serve `dir` on a free localhost port (or `port`), `types` overriding the MIME types by
/// extension; resolves to { server, origin, stop }: `stop()` closes it and drops open connections.
export async function serve(dir = www, { port = 0, types = {} } = {}) {
  const server = createServer(async (req, res) => {
    const path = join(dir, decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/\/$/, '/index.html'));
    // Streamed, as a real static server does: headers go out at once and the body follows,
    // rather than after reading the whole 22 MB model.
    try {
      const { size } = await stat(path);
      const type = types[extname(path)] ?? TYPES[extname(path)] ?? 'application/octet-stream';
      res.writeHead(200, { 'content-type': type, 'content-length': size });
      createReadStream(path, { highWaterMark: 1 << 20 }).pipe(res);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r, reject) => server.once('error', reject).listen(port, '127.0.0.1', r));
  const stop = () => new Promise((r) => { server.close(r); server.closeAllConnections(); });
  return { server, origin: `http://127.0.0.1:${server.address().port}`, stop };
}

/// Headless Chromium in a fresh profile folder (Playwright refuses --user-data-dir in args).
export async function launch(options = {}) {
  const work = await mkdtemp(join(tmpdir(), 'endplate-browser-'));
  const context = await chromium.launchPersistentContext(join(work, 'profile'), {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--no-first-run', '--disable-sync', '--disable-quic'],
    viewport: { width: 1280, height: 900 },
    ...options,
  });
  return { context, work };
}

/// A fresh headless Chromium on the page served from www/ (not yet loaded: the caller times or
/// orders the `goto`): what most browser tests start from. The page's console errors and
/// uncaught exceptions go into `consoleErrors`, which tests assert stays empty; `onContext` sees
/// the context before the page opens (to record its requests, say).
export async function openApp({ consoleErrors, onContext = () => {} }) {
  const { server, origin } = await serve(www);
  const { context, work } = await launch({ acceptDownloads: true });
  onContext(context);
  const page = context.pages()[0] ?? await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  return { server, origin, context, page, work };
}

/// Open a slice file and wait for the detection it starts to finish (or to report that the
/// detector is off): `#detection`'s `data-runs` counts the runs that finished.
export async function openSlice(p, file) {
  const before = await p.evaluate(() => Number(document.querySelector('#detection').dataset.runs));
  await p.setInputFiles('#slice-input', file);
  await p.waitForFunction((n) => Number(document.querySelector('#detection').dataset.runs) > n, before, { timeout: 60000 });
}

/// Click `selector` on page `p` and save the download it starts into `dir`; resolves to its path.
export async function downloadFrom(p, selector, dir) {
  const [dl] = await Promise.all([p.waitForEvent('download'), p.click(selector)]);
  const path = join(dir, dl.suggestedFilename());
  await dl.saveAs(path);
  return path;
}
