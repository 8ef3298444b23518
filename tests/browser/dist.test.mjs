// The installable build (`./build.sh dist`, README "Install and host") in Debian's headless
// Chromium: one visit caches the whole app, the page then opens and classifies with the server
// gone, a second build served later replaces the first, and a model the user keeps in the
// browser survives reloads. Needs www/pkg and www/models (./build.sh wasm).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, copyFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join, relative } from 'node:path';
import { root, www, serve, launch } from './harness.mjs';

let context, page, work, port;
let host = null; // the running server: { server, origin, stop }
const builds = {};
const consoleErrors = [];

/// Write a dist/ folder with `./build.sh dist` (no wasm rebuild) and return its build id.
function makeDist(dir, salt) {
  execFileSync('bash', ['build.sh', 'dist'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NO_WASM_BUILD: '1', DIST_DIR: dir, DIST_SALT: salt } });
  return dir;
}

async function buildId(dir) {
  return (await readFile(join(dir, 'index.html'), 'utf8')).match(/data-build="([0-9a-f]+)"/)[1];
}

async function listFiles(dir) {
  const out = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(relative(dir, join(e.parentPath ?? e.path, e.name)));
  }
  return out.sort();
}

before(async () => {
  for (const f of ['pkg/relaxed/endplate_bg.wasm', 'pkg/simd/endplate_bg.wasm', 'models/endplate-default.onnx', 'models/endplate-detector.onnx']) {
    assert.ok(existsSync(join(www, f)), `www/${f} is missing: ./build.sh wasm builds it`);
  }
  ({ context, work } = await launch());
  page = context.pages()[0] ?? await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  for (const [name, salt] of [['first', ''], ['second', 'a second build for the update test']]) {
    const dir = makeDist(join(work, `dist-${name}`), salt);
    builds[name] = { dir, id: await buildId(dir) };
  }
  assert.notEqual(builds.first.id, builds.second.id);
});

after(async () => {
  await context?.close();
  await host?.stop();
});

async function start(dir, options = {}) {
  host = await serve(dir, { port, ...options });
  port = Number(new URL(host.origin).port); // the same origin for every build: one service worker scope
  return host.origin;
}

async function stopServer() {
  await host.stop();
  host = null;
}

async function ready(p = page) {
  await p.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
}

/// The caches of this origin: { name: [path, ...] }.
const cacheContents = (p = page) => p.evaluate(async () => {
  const out = {};
  for (const k of await caches.keys()) out[k] = (await (await caches.open(k)).keys()).map((r) => new URL(r.url).pathname);
  return out;
});

/// A phantom, its true corners, Classify: the five discs get a class.
async function classifyPhantom(p = page) {
  const runs = await p.evaluate(() => Number(document.querySelector('#detection').dataset.runs));
  await p.click('#phantom-btn');
  await p.waitForFunction((n) => Number(document.querySelector('#detection').dataset.runs) > n, runs, { timeout: 60000 });
  await p.click('#truth-btn');
  await p.waitForSelector('#results li:nth-child(5) canvas');
  await p.click('#classify-btn');
  await p.waitForSelector('#results li:nth-child(5) .class[data-label]', { timeout: 60000 });
  assert.match(await p.textContent('#timing'), /5 discs classified in \d+ ms/);
  assert.equal(await p.isHidden('#error'), true, await p.textContent('#error'));
}

test('dist/ holds the page, both wasm builds and the models, nothing else', async () => {
  const id = builds.first.id;
  assert.deepEqual(await listFiles(builds.first.dir), [
    'icon-192.png', 'icon-512.png', 'icon.svg', 'index.html', 'manifest.webmanifest', 'sw.js',
    ...['adapt.js', 'app.js', 'engine.js', 'models/endplate-default.onnx', 'models/endplate-detector.onnx',
      'pkg/relaxed/endplate.js', 'pkg/relaxed/endplate_bg.wasm', 'pkg/simd/endplate.js', 'pkg/simd/endplate_bg.wasm',
      'scalebar.js', 'store.js', 'study.js', 'style.css', 'worker.js'].map((f) => `v/${id}/${f}`),
  ].sort());
  // The page's Content-Security-Policy is the one of www/: the service worker and the manifest
  // need nothing beyond 'self'.
  const csp = (html) => html.match(/Content-Security-Policy" content="([^"]+)"/)[1];
  assert.equal(csp(await readFile(join(builds.first.dir, 'index.html'), 'utf8')), csp(await readFile(join(www, 'index.html'), 'utf8')));
});

test('the first visit, from a host that gets the wasm MIME type wrong, caches the whole app, and the browser can install it', async () => {
  const { id } = builds.first;
  // application/octet-stream for .wasm, as many static hosts do: no streaming compilation.
  const origin = await start(builds.first.dir, { types: { '.wasm': 'application/octet-stream' } });
  await page.goto(origin + '/');
  await ready();
  assert.equal(await page.textContent('#model-name').then((n) => n.startsWith('endplate')), true);
  const version = (await readFile(join(root, 'Cargo.toml'), 'utf8')).match(/^version = "(.+)"/m)[1];
  assert.equal(await page.textContent('#version'), `endplate ${version} · build ${id}`);
  await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
  const caches = await cacheContents();
  assert.deepEqual(Object.keys(caches), [`endplate-${id}`]);
  const cached = caches[`endplate-${id}`];
  for (const f of ['/', '/manifest.webmanifest', '/icon-192.png', `/v/${id}/app.js`, `/v/${id}/worker.js`,
    `/v/${id}/models/endplate-default.onnx`, `/v/${id}/models/endplate-detector.onnx`,
    `/v/${id}/pkg/relaxed/endplate.js`, `/v/${id}/pkg/relaxed/endplate_bg.wasm`]) {
    assert.ok(cached.includes(f), `${f} is not cached: ${cached.join(' ')}`);
  }
  // Only the wasm build this browser runs (Chromium: relaxed SIMD) is downloaded.
  assert.ok(!cached.some((f) => f.includes('/pkg/simd/')));
  const cdp = await context.newCDPSession(page);
  const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
  assert.deepEqual(installabilityErrors, [], 'Chromium can install the page');
  const manifest = await cdp.send('Page.getAppManifest');
  assert.deepEqual(manifest.errors, []);
  await cdp.detach();
});

test('a model the user loads can be kept in the browser and chosen again after a reload', async () => {
  const file = join(work, 'clinic-model.onnx');
  await copyFile(join(www, 'models/endplate-default.onnx'), file);
  assert.equal(await page.isHidden('#keep-btn'), true);
  await page.setInputFiles('#model-input', file);
  await page.waitForSelector('#model-name[data-source="file:clinic-model.onnx"]');
  await page.click('#keep-btn');
  await page.waitForSelector('#kept-select option[value="clinic-model.onnx"]', { state: 'attached' });
  assert.equal(await page.isHidden('#keep-btn'), true);
  await page.reload();
  await ready();
  assert.equal(await page.getAttribute('#model-name', 'data-source'), 'bundled');
  assert.equal(await page.isVisible('#kept-list'), true);
  await page.selectOption('#kept-select', 'clinic-model.onnx');
  await page.waitForSelector('#model-name[data-source="kept:clinic-model.onnx"]');
  await classifyPhantom();
});

test('with the server gone, the page reopens from its cache and classifies, on the bundled and on a kept model', async () => {
  await stopServer();
  await page.reload();
  await ready();
  assert.equal(await page.getAttribute('#model-name', 'data-source'), 'bundled');
  assert.match(await page.textContent('#version'), new RegExp(`build ${builds.first.id}$`));
  await page.waitForSelector('#detection[data-state="ready"]');
  await classifyPhantom();
  await page.selectOption('#kept-select', 'clinic-model.onnx');
  await page.waitForSelector('#model-name[data-source="kept:clinic-model.onnx"]');
  await page.click('#clear-btn');
  await classifyPhantom();
  await page.screenshot({ path: join(root, 'target/browser/offline-dist.png') }).catch(() => {});
});

test('a second build served afterwards replaces the first on the next visit, cache and all', async () => {
  const { id } = builds.second;
  const origin = await start(builds.second.dir);
  // A page of the first build still open (the offline one) is told once the second takes over.
  assert.equal(await page.isHidden('#update'), true);
  const fresh = await context.newPage();
  await fresh.goto(origin + '/');
  await ready(fresh);
  assert.match(await fresh.textContent('#version'), new RegExp(`build ${id}$`));
  await page.waitForSelector('#update', { state: 'visible', timeout: 60000 });
  await fresh.close();
  await page.goto(origin + '/');
  await ready();
  assert.equal(await page.isHidden('#update'), true);
  assert.match(await page.textContent('#version'), new RegExp(`build ${id}$`));
  // The new service worker installs the new build, then drops the old cache.
  let caches;
  for (const t0 = Date.now(); Date.now() - t0 < 60000; await new Promise((r) => setTimeout(r, 250))) {
    caches = await cacheContents();
    if (Object.keys(caches).join() === `endplate-${id}`) break;
  }
  assert.deepEqual(Object.keys(caches), [`endplate-${id}`]);
  const cached = caches[`endplate-${id}`];
  assert.ok(cached.includes(`/v/${id}/pkg/relaxed/endplate_bg.wasm`));
  assert.ok(!cached.some((f) => f.includes(builds.first.id)));
  // Offline again: the new page with its own scripts, wasm and models, nothing of the first build.
  await stopServer();
  await page.reload();
  await ready();
  assert.match(await page.textContent('#version'), new RegExp(`build ${id}$`));
  const loaded = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname));
  assert.ok(loaded.some((f) => f === `/v/${id}/pkg/relaxed/endplate_bg.wasm`), loaded.join(' '));
  assert.deepEqual(loaded.filter((f) => f.startsWith('/v/') && !f.startsWith(`/v/${id}/`)), []);
  await classifyPhantom();
  // The kept model outlives the update; "Forget" removes it.
  await page.selectOption('#kept-select', 'clinic-model.onnx');
  await page.waitForSelector('#model-name[data-source="kept:clinic-model.onnx"]');
  await page.click('#forget-btn');
  await page.waitForSelector('#kept-list', { state: 'hidden' });
  assert.equal(await page.evaluate(() => new Promise((resolve) => {
    const r = indexedDB.open('endplate');
    r.onsuccess = () => { const q = r.result.transaction('models').objectStore('models').count(); q.onsuccess = () => resolve(q.result); };
  })), 0);
  assert.deepEqual(consoleErrors.filter((e) => !/Failed to load resource|ERR_CONNECTION_REFUSED/.test(e)), []);
});
