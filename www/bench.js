// In-browser benchmark (not a test): page-ready, model-load and classify times of the page's
// own worker, then ONNX Runtime Web (wasm, 1 thread, from www/vendor/ort/, copied there by
// `./build.sh bench-web`) on the same model bytes and the same network inputs. Results go to
// window.benchResult and the <pre>.
import { createEngine } from './engine.js';

const params = new URLSearchParams(location.search);
const RUNS = Number(params.get('runs') ?? 15);
// `?ready`: page-ready figures only (the runner repeats first visits in fresh browsers).
const READY_ONLY = params.has('ready');
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

async function endplate(engine, modelFetch) {
  const { variant } = await engine.ready;
  const wasmReady = performance.now();
  const modelBytes = await modelFetch;
  let t = performance.now();
  const card = await engine.loadModel(modelBytes.slice(0), 'endplate-default.onnx');
  const modelLoad = performance.now() - t;
  const pageReady = performance.now();
  if (READY_ONLY) {
    // Let the helpers finish loading first, so the runner's next visit does not compete with them.
    await engine.helpersReady();
    return { result: { wasm_ready_ms: wasmReady, model_load_ms: modelLoad, page_ready_ms: pageReady } };
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
  return { result, input, logits };
}

async function onnxRuntimeWeb(modelBytes, input) {
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
    const feeds = { input: new ort.Tensor('float32', input.slice(0, n * per), [n, 3, 128, 128]) };
    return (await session.run(feeds)).logits.data;
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
  const ours = await endplate(engine, modelFetch);
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
    ort = await onnxRuntimeWeb(modelBytes, ours.input);
    const o = ort.result;
    log(`ONNX Runtime Web ${o.version} (wasm, 1 thread): session ${o.load_ms.toFixed(0)} ms`);
    log(`  1 disc ${o.one_disc_ms.toFixed(1)} ms; 5 discs ${o.five_discs_batched_ms.toFixed(1)} ms batched, ${o.five_discs_one_by_one_ms.toFixed(1)} ms one by one`);
    const diff = Math.max(...ours.logits.flat().map((v, i) => Math.abs(v - ort.logits[i])));
    ort.result.max_logit_difference = diff;
    log(`  same inputs, largest logit difference between the engines: ${diff.toExponential(2)}`);
  } catch (e) {
    log(`ONNX Runtime Web failed: ${e.message ?? e}`);
  }
  window.benchResult = { endplate: r, onnxruntime_web: ort?.result ?? null, runs: RUNS, userAgent: navigator.userAgent };
}

main().catch((e) => { log(`error: ${e.message ?? e}`); window.benchResult = { error: String(e) }; });
