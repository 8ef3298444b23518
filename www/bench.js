// In-browser benchmark (not a test): page-ready, model-load and classify times of the page's
// own worker, then ONNX Runtime Web (wasm, 1 thread, from www/vendor/ort/, copied there by
// `./build.sh bench-web`) on the same model bytes and the same network inputs; then the same for
// the disc detector (`?slices=URL,URL`: real slices the runner copies next to ORT's files; a
// phantom without them). Results go to window.benchResult and the <pre>.
import { createEngine } from './engine.js';

const params = new URLSearchParams(location.search);
const RUNS = Number(params.get('runs') ?? 15);
// `?ready`: page-ready figures only (the runner repeats first visits in fresh browsers).
const READY_ONLY = params.has('ready');
// Detections of one slice in a row after the per-slice figures (`?long=N`).
const LONG_RUN = Number(params.get('long') ?? 200);
const out = document.getElementById('out');
const log = (s) => { out.textContent += `\n${s}`; };
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

/// Median wall time of RUNS calls of `run`.
async function timed(run) {
  const v = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await run();
    v.push(performance.now() - t0);
  }
  return median(v);
}

/// The disc detector in the page: load, the first detection on a fresh worker, then per slice
/// the whole detection (worker round trip).
async function detector(engine, bytes, sliceUrls) {
  const t = performance.now();
  const card = await engine.loadDetector(bytes.slice(0), 'endplate-detector.onnx');
  const load = performance.now() - t;
  const slices = [];
  let first = null;
  let input = null;
  for (const url of sliceUrls.length ? sliceUrls : [null]) {
    let name = 'phantom seed 7';
    if (url) {
      const res = await fetch(url);
      if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
      const b = await res.arrayBuffer();
      const r = await engine.call('loadSlice', { bytes: b, name: url }, [b]);
      name = `${url.split('/').pop()} (${r.info.width} x ${r.info.height})`;
    } else {
      await engine.call('newPhantom', { seed: 7 });
    }
    const d = await engine.detect();
    if (!first) {
      first = d;
      input = await engine.call('detectorInput');
    }
    for (let i = 0; i < (slices.length ? 2 : 5); i++) await engine.detect(); // warm-up, as for the classifier
    const inWorker = [];
    const ms = await timed(async () => { inWorker.push((await engine.detect()).milliseconds); });
    slices.push({ slice: name, discs: d.discs.length, lumbar: d.lumbar, levels: d.discs.map((x) => x.level), detect_ms: ms, in_worker_ms: median(inWorker) });
  }
  // Many detections of the last slice in a row: the per-slice figures above come from the first
  // few dozen calls, and in Chromium a kernel's speed has hung on where V8 left the stack, which
  // can change hundreds of calls in (DEVELOPERS.md, "Page timing"). Slowest and 90th percentile
  // show whether it did.
  const long = [];
  for (let i = 0; i < LONG_RUN; i++) long.push((await engine.detect()).milliseconds);
  const sortedLong = [...long].sort((a, b) => a - b);
  const per = slices.map((x) => x.detect_ms);
  const result = {
    long_run: { calls: LONG_RUN, median_ms: median(long), p90_ms: sortedLong[Math.floor(0.9 * (LONG_RUN - 1))],
      min_ms: sortedLong[0], max_ms: sortedLong[LONG_RUN - 1] },
    detector: card.summary?.name,
    load_ms: load,
    first_detect_ms: first.ms,
    slices,
    detect_ms: median(per),
    detect_min_ms: Math.min(...per),
    detect_max_ms: Math.max(...per),
    detect_in_worker_ms: median(slices.map((x) => x.in_worker_ms)),
    // Contrast stretch of the last slice and its first view's input (round trip, input copied back).
    input_ms: await timed(() => engine.call('detectorInput')),
  };
  return { result, input };
}

/// The detector network alone, ours (in the worker) and ONNX Runtime Web's (wasm, one thread) on
/// the same input, timed in alternation so that load from elsewhere on the machine falls on both.
/// ONNX Runtime runs every network of a file, even when asked for `maps` alone; `?ortDetector=URL`
/// gives it the same file cut to its first network (the runner writes one with Python's onnx), so
/// that both engines run the same network.
async function detectorNetworks(engine, ort, bytes, input) {
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = new URL('vendor/ort/', location.href).href;
  const size = Math.round(Math.sqrt(input.length));
  const cut = params.get('ortDetector');
  if (cut) {
    const res = await fetch(cut);
    if (!res.ok) throw new Error(`${cut}: HTTP ${res.status}`);
    bytes = new Uint8Array(await res.arrayBuffer());
  }
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const load = performance.now() - t0;
  const feeds = { input: new ort.Tensor('float32', input, [1, 1, size, size]) };
  // Only `maps`: a joined corner network in the file is a second network this view does not run.
  const theirs = async () => (await session.run(feeds, ['maps'])).maps.data;
  const ours = () => engine.call('detectorMaps', { input });
  for (let i = 0; i < 5; i++) { await ours(); await theirs(); }
  const [trip, inWorker, ortMs] = [[], [], []];
  for (let i = 0; i < 2 * RUNS; i++) {
    let t = performance.now();
    inWorker.push((await ours()).ms);
    trip.push(performance.now() - t);
    t = performance.now();
    await theirs();
    ortMs.push(performance.now() - t);
  }
  const [a, b] = [(await ours()).maps, await theirs()];
  return {
    endplate: { network_ms: median(inWorker), network_round_trip_ms: median(trip) },
    onnxruntime_web: { load_ms: load, network_ms: median(ortMs), file: cut ? 'first network only' : 'whole file',
      max_map_difference: Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]))) },
  };
}

async function endplate(engine, modelFetch, detectorFetch) {
  const { variant } = await engine.ready;
  const wasmReady = performance.now();
  const modelBytes = await modelFetch;
  let t = performance.now();
  const card = await engine.loadModel(modelBytes.slice(0), 'endplate-default.onnx');
  const modelLoad = performance.now() - t;
  const pageReady = performance.now();
  if (READY_ONLY) {
    // The detector loads after page ready, as in the app (a slice opened meanwhile waits for it),
    // while the helpers load the model.
    t = performance.now();
    await engine.loadDetector(await detectorFetch, 'endplate-detector.onnx');
    const detectorLoad = performance.now() - t;
    const detectorReady = performance.now();
    // Let the helpers finish loading first, so the runner's next visit does not compete with them.
    await engine.helpersReady();
    return { result: { wasm_ready_ms: wasmReady, model_load_ms: modelLoad, page_ready_ms: pageReady,
      detector_load_ms: detectorLoad, detector_ready_ms: detectorReady } };
  }
  const phantom = await engine.call('newPhantom', { seed: 7 });
  const corners = phantom.truth.flatMap((d) => d.corners.flat());
  const helpers = await engine.helpersReady();
  const oneInput = await engine.call('modelInput', { corners: corners.slice(0, 8) });
  // Warm-up: V8 tiers hot wasm functions up in background threads, which compete for the cores.
  for (let i = 0; i < 5; i++) {
    await engine.classify(corners);
    await engine.call('classify', { corners });
  }
  const result = {
    wasm_ready_ms: wasmReady,
    model_load_ms: modelLoad,
    page_ready_ms: pageReady,
    workers: 1 + helpers,
    wasm_build: variant,
    one_disc_ms: await timed(() => engine.classify(corners.slice(0, 8))),
    // The network alone (input already made), as ONNX Runtime Web is timed below.
    one_disc_network_ms: await timed(() => engine.call('classifyInput', { input: oneInput })),
    five_discs_one_worker_ms: await timed(() => engine.call('classify', { corners })),
    five_discs_ms: await timed(() => engine.classify(corners)),
    model: card.summary?.name,
  };
  const input = await engine.call('modelInput', { corners });
  const logits = (await engine.classify(corners)).results.map((r) => r.logits);
  const views = 1 + (card.card?.preprocessing?.moved_corners?.moves?.length ?? 0);
  return { result, input, logits, mirror: Boolean(card.card?.mirror_average), views };
}

// A disc's input mirrored left to right, plane by plane: what a card's `mirror_average` has
// every reader run next to the disc's own input (src/model/inference.rs, `mirrored`).
function mirrored(input) {
  const out = new Float32Array(input.length);
  for (let row = 0; row < input.length; row += 128) {
    for (let x = 0; x < 128; x++) out[row + x] = input[row + 127 - x];
  }
  return out;
}

// ONNX Runtime Web on the same file and inputs, doing the same work as ours: each disc's
// `views` inputs (its ROI and the moved copies of the card's `preprocessing.moved_corners`)
// run, each also mirrored where the card asks for the mirror image's average (one batch of
// all), and their logits are averaged per disc.
async function onnxRuntimeWeb(modelBytes, input, mirror, views = 1) {
  const t0 = performance.now();
  const ort = await import('./vendor/ort/ort.wasm.min.mjs');
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.simd = true;
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmPaths = new URL('vendor/ort/', location.href).href;
  const session = await ort.InferenceSession.create(modelBytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const ready = performance.now() - t0;
  const per = 3 * 128 * 128;
  const run = async (n) => {
    const own = input.slice(0, n * views * per);
    const m = n * views; // inputs, disc after disc, each disc's views together
    const all = new Float32Array((mirror ? 2 : 1) * m * per);
    all.set(own);
    if (mirror) all.set(mirrored(own), m * per);
    const runs = all.length / per;
    const l = (await session.run({ input: new ort.Tensor('float32', all, [runs, 3, 128, 128]) })).logits.data;
    return Float32Array.from({ length: 4 * n }, (_, i) => {
      const [disc, k] = [Math.floor(i / 4), i % 4];
      let sum = 0;
      for (let v = 0; v < views; v++) {
        sum += l[4 * (disc * views + v) + k];
        if (mirror) sum += l[4 * (m + disc * views + v) + k];
      }
      return sum / (views * (mirror ? 2 : 1));
    });
  };
  const oneByOne = async (n) => { for (let k = 0; k < n; k++) await run(1); };
  for (let i = 0; i < 5; i++) { await run(5); await run(1); } // the same warm-up as ours
  const logits = Array.from(await run(5));
  return {
    result: {
      version: ort.env.versions?.web ?? 'unknown',
      load_ms: ready,
      one_disc_ms: await timed(() => run(1)),
      five_discs_batched_ms: await timed(() => run(5)),
      five_discs_one_by_one_ms: await timed(() => oneByOne(5)),
    },
    logits,
  };
}

async function main() {
  // As the app does: the model downloads while the page compiles the wasm.
  const engine = createEngine();
  const modelFetch = fetch('models/endplate-default.onnx').then((r) => r.arrayBuffer());
  // As the app does: the detector downloads alongside and loads after the classifier.
  const detectorFetch = fetch('models/endplate-detector.onnx').then((res) => {
    if (!res.ok) throw new Error(`models/endplate-detector.onnx: HTTP ${res.status}`);
    return res.arrayBuffer();
  });
  detectorFetch.catch(() => {});
  const ours = await endplate(engine, modelFetch, detectorFetch);
  const r = ours.result;
  if (READY_ONLY) {
    window.benchResult = { endplate: r };
    return;
  }
  const modelBytes = await modelFetch;
  log(`endplate (tract in wasm, ${r.wasm_build === "simd" ? "plain" : "relaxed"} SIMD build, Web Workers): page ready ${r.page_ready_ms.toFixed(0)} ms (wasm ready at ${r.wasm_ready_ms.toFixed(0)} ms; model load ${r.model_load_ms.toFixed(0)} ms)`);
  log(`  1 disc ${r.one_disc_ms.toFixed(1)} ms (network alone ${r.one_disc_network_ms.toFixed(1)} ms); 5 discs ${r.five_discs_one_worker_ms.toFixed(1)} ms on one worker, ${r.five_discs_ms.toFixed(1)} ms on ${r.workers} workers (page round trips)`);
  let ort = null;
  try {
    ort = await onnxRuntimeWeb(modelBytes, ours.input, ours.mirror, ours.views);
    const o = ort.result;
    log(`ONNX Runtime Web ${o.version} (wasm, 1 thread${ours.mirror ? '; each disc and its mirror image, as the card asks' : ''}): session ${o.load_ms.toFixed(0)} ms`);
    log(`  1 disc ${o.one_disc_ms.toFixed(1)} ms; 5 discs ${o.five_discs_batched_ms.toFixed(1)} ms batched, ${o.five_discs_one_by_one_ms.toFixed(1)} ms one by one`);
    const diff = Math.max(...ours.logits.flat().map((v, i) => Math.abs(v - ort.logits[i])));
    ort.result.max_logit_difference = diff;
    log(`  same inputs, largest logit difference between the engines: ${diff.toExponential(2)}`);
  } catch (e) {
    log(`ONNX Runtime Web failed: ${e.message ?? e}`);
  }
  let det = null;
  let detOrt = null;
  try {
    det = await detector(engine, await detectorFetch, (params.get('slices') ?? '').split(',').filter(Boolean));
    const d = det.result;
    log(`\ndisc detector ${d.detector}: load ${d.load_ms.toFixed(0)} ms; first detection on a fresh worker ${d.first_detect_ms.toFixed(0)} ms`);
    for (const x of d.slices) log(`  ${x.slice}: ${x.discs} discs (${x.levels.map((l) => l ?? '?').join(' ')}), ${x.detect_ms.toFixed(1)} ms (${x.in_worker_ms.toFixed(1)} ms in the worker)`);
    log(`  endplate: detection ${d.detect_ms.toFixed(1)} ms per slice, median of ${d.slices.length} (${d.detect_min_ms.toFixed(1)}-${d.detect_max_ms.toFixed(1)}; page round trip, ${d.detect_in_worker_ms.toFixed(1)} ms in the worker); stretch + one view's input ${d.input_ms.toFixed(1)} ms (${d.slices[d.slices.length - 1].slice}, round trip)`);
    const l = d.long_run;
    log(`  ${l.calls} detections of that slice in a row (in the worker): median ${l.median_ms.toFixed(1)} ms, 90th percentile ${l.p90_ms.toFixed(1)}, ${l.min_ms.toFixed(1)}-${l.max_ms.toFixed(1)}`);
  } catch (e) {
    log(`detector failed: ${e.message ?? e}`);
  }
  if (det) {
    try {
      const ortLib = await import('./vendor/ort/ort.wasm.min.mjs');
      const n = await detectorNetworks(engine, ortLib, await detectorFetch, det.input);
      Object.assign(det.result, n.endplate);
      detOrt = { result: n.onnxruntime_web };
      log(`  network alone, one view (${Math.round(Math.sqrt(det.input.length))}², timed in alternation): endplate ${n.endplate.network_ms.toFixed(1)} ms in the worker (${n.endplate.network_round_trip_ms.toFixed(1)} ms page round trip); ONNX Runtime Web (wasm, 1 thread, ${n.onnxruntime_web.file}) ${n.onnxruntime_web.network_ms.toFixed(1)} ms, session ${n.onnxruntime_web.load_ms.toFixed(0)} ms; largest map difference ${n.onnxruntime_web.max_map_difference.toExponential(2)}`);
    } catch (e) {
      log(`  ONNX Runtime Web on the detector failed: ${e.message ?? e}`);
    }
  }
  window.benchResult = { endplate: r, onnxruntime_web: ort?.result ?? null, detector: det?.result ?? null,
    detector_onnxruntime_web: detOrt?.result ?? null, runs: RUNS, userAgent: navigator.userAgent };
}

main().catch((e) => { log(`error: ${e.message ?? e}`); window.benchResult = { error: String(e) }; });
