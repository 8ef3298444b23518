// Runs the wasm library off the main thread: the page stays responsive while a slice decodes
// or the network runs. Speaks {id, type, ...} in, {id, ok, result | error} out.

// A 41-byte module using i8x16.relaxed_swizzle: valid only where the browser has relaxed SIMD,
// which the faster build needs. Elsewhere the plain-SIMD build runs.
const RELAXED_SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0,
  10, 43, 1, 41, 0, 253, 12, ...new Array(16).fill(0), 253, 12, ...new Array(16).fill(0), 253, 128, 2, 11]);
// `?wasm=simd` forces the plain build (tests and benchmarks of the fallback).
const forced = new URL(self.location.href).searchParams.get('wasm');
const variant = forced === 'simd' || !WebAssembly.validate(RELAXED_SIMD_PROBE) ? 'simd' : 'relaxed';
const { default: init, Endplate } = await import(`./pkg/${variant}/endplate.js`);

let ep;
const ready = init().then(() => { ep = new Endplate(); postMessage({ type: 'ready', variant, ms: performance.now() }); });

const handlers = {
  loadModel: ({ bytes, name }) => JSON.parse(ep.loadModel(new Uint8Array(bytes), name)),
  loadSlice: ({ bytes, name }) => sliceResult(JSON.parse(ep.loadSlice(new Uint8Array(bytes), name))),
  newPhantom: ({ seed }) => {
    const r = JSON.parse(ep.newPhantom(seed));
    return { ...sliceResult(r.info), truth: r.truth };
  },
  roi: ({ corners }) => ({
    preview: ep.roiPreview(new Float64Array(corners)),
    outline: Array.from(ep.roiOutline(new Float64Array(corners))),
  }),
  classify: ({ corners }) => {
    const t0 = performance.now();
    const results = JSON.parse(ep.classify(new Float64Array(corners)));
    return { results, ms: performance.now() - t0 };
  },
  modelInput: ({ corners }) => ep.modelInput(new Float64Array(corners)),
  classifyInput: ({ input }) => ({ results: JSON.parse(ep.classifyInput(input)) }),
  exportCsv: ({ image, subject, discs }) => ep.exportCsv(image, subject, JSON.stringify(discs)),
  importCsv: ({ name, text }) => JSON.parse(ep.importCsv(name, text)),
};

function sliceResult(info) {
  return { info, pixels: ep.slicePixels() };
}

onmessage = async ({ data }) => {
  await ready;
  const { id, type, ...args } = data;
  try {
    postMessage({ id, ok: true, result: handlers[type](args) });
  } catch (err) {
    postMessage({ id, ok: false, error: String(err?.message ?? err) });
  }
};
