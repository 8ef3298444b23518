// The page's engine: our wasm library in Web Workers. One primary worker holds the slice and
// answers every call; helper workers hold only the model and take a share of the discs when
// classifying, so five discs run on several cores at once. Helpers start after the primary is
// ready (page-ready time is the primary's alone) and join once their model matches.

function spawn() {
  const url = new URL('./worker.js', import.meta.url);
  const forced = new URLSearchParams(location.search).get('wasm');
  if (forced) url.searchParams.set('wasm', forced);
  const worker = new Worker(url, { type: 'module' });
  const pending = new Map();
  let nextId = 1;
  const ready = new Promise((resolve) => {
    worker.addEventListener('message', ({ data }) => {
      if (data.type === 'ready') return resolve({ variant: data.variant, ms: data.ms });
      const p = pending.get(data.id);
      pending.delete(data.id);
      data.ok ? p.resolve(data.result) : p.reject(new Error(data.error));
    });
  });
  const call = (type, args = {}, transfer = []) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, type, ...args }, transfer);
  });
  return { ready, call, model: null, terminate: () => worker.terminate() };
}

/// How many workers share a classification: one per core, at most four (each holds its own copy
/// of the model, about 50 MB).
export function poolSize() {
  return Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 4));
}

export function createEngine({ workers = poolSize() } = {}) {
  const primary = spawn();
  const helpers = [];
  let model = null; // {bytes, name, generation}
  let generation = 0;

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
      for (let i = 1; i < workers; i++) helpers.push(spawn());
    });
    return started;
  };

  return {
    ready: primary.ready,
    call: primary.call,

    /// Load a model into the primary (its answer, or its error, is the caller's), then into the
    /// helpers in the background.
    async loadModel(bytes, name) {
      const keep = bytes.slice(0);
      const card = await primary.call('loadModel', { bytes, name }, [bytes]);
      model = { bytes: keep, name, generation: ++generation };
      syncing = startHelpers().then(() => Promise.all(helpers.map(syncHelper)));
      return card;
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
      if (n < 2 || ready.length === 0) {
        const r = await primary.call('classify', { corners });
        return { ...r, ms: performance.now() - t0, workers: 1 };
      }
      // Shares of whole discs; the helpers' network inputs are cut by the primary (it holds the
      // slice) and sent first, then the primary classifies its own share straight from corners.
      const pool = [...ready, primary].slice(-n);
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
  };
}
