// The service worker of the installable page (dist/ only: `./build.sh dist` fills in BUILD and
// the file lists; the page registers it only when it carries a build id, so `./build.sh serve`
// never caches anything). After the first visit the whole app is in one cache per build:
// the page, its scripts, the models and the wasm build this browser runs.
//
// Every file but the page, the manifest and the icons lives under v/<build>/, so a page can only
// ever load the scripts, wasm and models of its own build. A new build installs into a new
// cache next to the old one and, once complete, deletes the old one.
const BUILD = '@BUILD@';
const CACHE = `endplate-${BUILD}`;
const CORE = @CORE@;
const VARIANTS = @VARIANTS@;
const NAVIGATION_TIMEOUT_MS = 4000;

// The relaxed-SIMD probe of engine.js (keep the two identical): the worker precaches the build
// the page will pick.
const RELAXED_SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0,
  10, 43, 1, 41, 0, 253, 12, ...new Array(16).fill(0), 253, 12, ...new Array(16).fill(0), 253, 128, 2, 11]);

self.addEventListener('install', (event) => {
  const variant = WebAssembly.validate(RELAXED_SIMD_PROBE) ? 'relaxed' : 'simd';
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // Files under v/<build>/ never change under their name: the HTTP cache's copy (from this
    // visit) will do. The page, manifest and icons are checked with the server.
    await cache.addAll([...CORE, ...VARIANTS[variant]].map((u) => new Request(u, { cache: u.startsWith('v/') ? 'default' : 'no-cache' })));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith('endplate-') && key !== CACHE) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

// The page asks which build this worker serves (to offer a reload when a newer one took over).
self.addEventListener('message', (event) => {
  if (event.data === 'build') event.source?.postMessage({ type: 'build', build: BUILD });
});

async function fromCache(request) {
  const cache = await caches.open(CACHE);
  return cache.match(request, { ignoreSearch: true });
}

// The page: from the network when it answers (a newer build shows at once), else this build's.
async function navigate(request) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), NAVIGATION_TIMEOUT_MS);
  try {
    const res = await fetch(request, { signal: abort.signal, cache: 'no-cache' });
    if (res.ok) return res;
    return (await fromCache('./')) ?? res;
  } catch (err) {
    const cached = await fromCache('./');
    if (cached) return cached;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== location.origin) return;
  if (request.mode === 'navigate') return event.respondWith(navigate(request));
  const mine = url.pathname.startsWith(new URL(`v/${BUILD}/`, self.registration.scope).pathname);
  event.respondWith((async () => {
    const cached = await fromCache(request);
    if (cached) return cached;
    const res = await fetch(request);
    // This build's files not precached (the other wasm build, when `?wasm=simd` forces it) are
    // kept once fetched; other builds' files pass through untouched.
    if (mine && res.ok) (await caches.open(CACHE)).put(request, res.clone());
    return res;
  })());
});
