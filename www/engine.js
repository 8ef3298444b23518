// The page's engine: our wasm library in Web Workers. One primary worker holds the slice and
// the disc detector and answers every call; helper workers hold only the model and take a share
// of the discs when classifying, so five discs run on several cores at once. Helpers start
// after the primary is ready (page-ready time is the primary's alone) and join once their model
// matches.
//
// The page fetches and compiles the wasm itself, once, while the first worker starts (a worker
// takes 100-150 ms to start running its script), and hands the compiled module to every worker.

// A 41-byte module using i8x16.relaxed_swizzle: valid only where the browser has relaxed SIMD,
// which the faster build needs. Elsewhere the plain-SIMD build runs.
const RELAXED_SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0,
  10, 43, 1, 41, 0, 253, 12, ...new Array(16).fill(0), 253, 12, ...new Array(16).fill(0), 253, 128, 2, 11]);

/// The wasm build this browser runs: `relaxed` where it has relaxed SIMD, else `simd`;
/// `?wasm=simd` forces the plain build (tests and benchmarks of the fallback).
export function wasmVariant() {
  const forced = new URLSearchParams(location.search).get('wasm');
  return forced === 'simd' || !WebAssembly.validate(RELAXED_SIMD_PROBE) ? 'simd' : 'relaxed';
}

async function compileWasm(variant) {
  const url = new URL(`./pkg/${variant}/endplate_bg.wasm`, import.meta.url);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url.pathname} is missing (HTTP ${res.status}); build it with ./build.sh wasm`);
  // Streaming compilation overlaps the download; it needs the application/wasm type. A static
  // host that serves another type (application/octet-stream, text/plain) gets the plain
  // compilation of the whole download instead: slower to start, the same module.
  const type = (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/wasm' && WebAssembly.compileStreaming) return WebAssembly.compileStreaming(res);
  return WebAssembly.compile(await res.arrayBuffer());
}

function spawn(variant, module) {
  const url = new URL('./worker.js', import.meta.url);
  url.searchParams.set('wasm', variant);
  const worker = new Worker(url, { type: 'module' });
  const pending = new Map();
  let nextId = 1;
  const ready = new Promise((resolve, reject) => {
    module.then((m) => worker.postMessage({ type: 'init', module: m }), reject);
    worker.addEventListener('message', ({ data }) => {
      if (data.type === 'ready') return resolve({ variant });
      if (data.type === 'failed') return reject(new Error(data.error));
      const p = pending.get(data.id);
      pending.delete(data.id);
      data.ok ? p.resolve(data.result) : p.reject(new Error(data.error));
    });
  });
  // Calls wait for the worker's wasm; if it never comes, they fail with its reason.
  const call = (type, args = {}, transfer = []) => ready.then(() => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, type, ...args }, transfer);
  }));
  return { ready, call, model: null, terminate: () => worker.terminate() };
}

/// How many workers share a classification: one more than the cores, at most four (each holds
/// its own copy of the model, about 140 MB of wasm memory). Whole discs go to workers, so on two
/// cores two workers classify five discs in three disc-times; three workers (2 + 2 + 1) let the
/// cores time-slice the odd disc and finish in about two and a half (measured: 134-145 ms
/// against 146-179 ms).
export function poolSize() {
  const cores = navigator.hardwareConcurrency || 1;
  return cores < 2 ? 1 : Math.min(cores + 1, 4);
}

export function createEngine({ workers = poolSize() } = {}) {
  const variant = wasmVariant();
  const module = compileWasm(variant);
  const primary = spawn(variant, module);
  const helpers = [];
  let model = null; // {bytes, name, generation}
  let generation = 0;
  let evidenceTurn = 0;

  async function syncHelper(h) {
    const m = model;
    if (!m || h.model === m.generation) return;
    try {
      await h.ready;
      await h.call('loadModel', { bytes: m.bytes.slice(0), name: m.name });
      if (model === m) h.model = m.generation;
    } catch {
      h.model = null; // a helper that cannot load the model is simply not used
    }
  }

  let syncing = Promise.resolve();
  let started = null;
  // Helpers start with the first model, so they never slow the page's own start.
  const startHelpers = () => {
    started ??= primary.ready.then(() => {
      for (let i = 1; i < workers; i++) helpers.push(spawn(variant, module));
    });
    return started;
  };

  return {
    ready: primary.ready,
    /// Resolves once the wasm is compiled: large downloads that are not needed before then
    /// (the model) wait for it, so they do not slow the wasm's own.
    wasm: module,
    call: primary.call,

    /// Load a model into the primary (its answer, or its error, is the caller's), then into the
    /// helpers in the background.
    async loadModel(bytes, name) {
      const keep = bytes.slice(0);
      const card = await primary.call('loadModel', { bytes, name }, [bytes]);
      // A detector file: the primary took it as its detector; the classifier stays.
      if (card.kind === 'detector') return card;
      model = { bytes: keep, name, generation: ++generation };
      syncing = startHelpers().then(() => Promise.all(helpers.map(syncHelper)));
      return card;
    },

    /// The active classifier's file, a copy (adaptation refits its last layer), or null.
    modelFile: () => model && { bytes: model.bytes.slice(0), name: model.name },

    /// Load the disc detector into the primary only: it holds the slice, so it detects.
    loadDetector: (bytes, name) => primary.call('loadDetector', { bytes, name }, [bytes]),

    /// Detect the discs of the primary's slice: `{discs, lumbar, upside_down, milliseconds}`
    /// from the worker, plus `ms`, the page's wall time for the round trip.
    async detect() {
      const t0 = performance.now();
      const r = await primary.call('detect');
      return { ...r, ms: performance.now() - t0 };
    },

    /// Resolves when every helper has the current model (or has given up on it).
    async helpersReady() {
      await syncing;
      return helpers.filter((h) => model && h.model === model.generation).length;
    },

    /// Classify discs (eight corner numbers each) across the workers whose model is current.
    /// Same numbers as one worker: every worker runs the same network on the same input.
    async classify(corners) {
      const t0 = performance.now();
      const n = corners.length / 8;
      const ready = helpers.filter((h) => model && h.model === model.generation);
      // Shares of whole discs, the primary always among the workers (one disc: the primary
      // alone); the helpers' network inputs are cut by the primary (it holds the slice) and sent
      // first, then the primary classifies its own share straight from corners.
      const pool = [...ready, primary].slice(-Math.max(n, 1));
      const share = Math.ceil(n / pool.length);
      const parts = await Promise.all(pool.map(async (w, k) => {
        const mine = corners.slice(k * share * 8, Math.min(n, (k + 1) * share) * 8);
        if (!mine.length) return { results: [] };
        if (w === primary) return primary.call('classify', { corners: mine });
        const input = await primary.call('modelInput', { corners: mine });
        return w.call('classifyInput', { input }, [input.buffer]);
      }));
      return { results: parts.flatMap((p) => p.results), ms: performance.now() - t0, workers: pool.length };
    },

    /// One disc's evidence map (occlusion sensitivity, 49 network runs), on demand: the primary
    /// cuts the network input, a helper with the current model computes the map (the primary
    /// when none is ready), so the page and the primary stay free meanwhile.
    async evidence(corners) {
      const t0 = performance.now();
      const input = await primary.call('modelInput', { corners });
      const ready = helpers.filter((h) => model && h.model === model.generation);
      const w = ready.length ? ready[evidenceTurn++ % ready.length] : primary;
      const r = await w.call('evidenceInput', { input }, [input.buffer]);
      return { ...r, ms: performance.now() - t0 };
    },
  };
}
