// Runs the wasm library off the main thread: the page stays responsive while a slice decodes
// or the network runs. Speaks {id, type, ...} in, {id, ok, result | error} out. The library
// returns plain objects and typed arrays (serde-wasm-bindgen), never JSON text.

// The page compiles the wasm once (www/engine.js) and sends the module as the first message;
// the glue for that build loads meanwhile.
const variant = new URL(self.location.href).searchParams.get('wasm') ?? 'relaxed';
const glue = import(`./pkg/${variant}/endplate.js`);

let ep;
let ready;
function start(module) {
  ready = glue
    .then(({ default: init, Endplate }) => init({ module_or_path: module }).then(() => { ep = new Endplate(); }));
  ready.then(() => postMessage({ type: 'ready' }),
    (err) => postMessage({ type: 'failed', error: `the wasm library did not start (${err?.message ?? err}); rebuild it with ./build.sh wasm` }));
}

const handlers = {
  loadModel: ({ bytes, name }) => {
    const b = new Uint8Array(bytes);
    try {
      return ep.loadModel(b, name);
    } catch (err) {
      // A detector file given where a classifier was expected ("Load model", a dropped file):
      // load it as the disc detector instead.
      if (!/card kind "detector"/.test(String(err?.message ?? err))) throw err;
      return { kind: 'detector', ...ep.loadDetector(b, name) };
    }
  },
  loadDetector: ({ bytes, name }) => ep.loadDetector(new Uint8Array(bytes), name),
  detect: () => ep.detect(),
  detectorInput: () => ep.detectorInput(),
  detectorMaps: ({ input }) => {
    const t0 = performance.now();
    const maps = ep.detectorMaps(input);
    return { maps, ms: performance.now() - t0 };
  },
  loadSlice: ({ bytes, name }) => sliceResult(ep.loadSlice(new Uint8Array(bytes), name)),
  newPhantom: ({ seed }) => {
    const r = ep.newPhantom(seed);
    return { ...sliceResult(r.info), truth: r.truth };
  },
  roi: ({ corners }) => ({
    preview: ep.roiPreview(new Float64Array(corners)),
    outline: Array.from(ep.roiOutline(new Float64Array(corners))),
  }),
  classify: ({ corners }) => ({ results: ep.classify(new Float64Array(corners)) }),
  modelInput: ({ corners }) => ep.modelInput(new Float64Array(corners)),
  classifyInput: ({ input }) => ({ results: ep.classifyInput(input) }),
  evidenceInput: ({ input }) => ep.evidenceInput(input),
  features: ({ corners }) => ep.features(new Float64Array(corners)),
  adapt: ({ base, name, discs, features, date }) => ep.adapt(new Uint8Array(base), name, discs, features, date),
  exportCsv: ({ image, subject, discs, context }) => ep.exportCsv(image, subject, discs, context),
  // A study (www/study.js): files one at a time (a zip is kept in the worker), then the series.
  studyBegin: () => ep.studyBegin(),
  studyAdd: ({ bytes, name }) => ep.studyAdd(new Uint8Array(bytes), name),
  studyFinish: () => ep.studyFinish(),
  // A study's slice: the page's own file when it has one, else an entry of a kept zip.
  loadStudySlice: ({ bytes, name }) => sliceResult(bytes ? ep.loadSlice(new Uint8Array(bytes), name) : ep.loadStudySlice(name)),
  importCsv: ({ name, text }) => ep.importCsv(name, text),
};

function sliceResult(info) {
  return { info, pixels: ep.slicePixels() };
}

// Typed arrays the library made for this answer (a slice's pixels, an ROI preview) are moved to
// the page, not copied.
function transferables(result) {
  if (!result || typeof result !== 'object') return [];
  const values = ArrayBuffer.isView(result) ? [result] : Object.values(result);
  return [...new Set(values.filter((v) => ArrayBuffer.isView(v)).map((v) => v.buffer))];
}

onmessage = async ({ data }) => {
  if (data.type === 'init') return start(data.module);
  await ready;
  const { id, type, ...args } = data;
  try {
    const result = handlers[type](args);
    postMessage({ id, ok: true, result }, transferables(result));
  } catch (err) {
    postMessage({ id, ok: false, error: String(err?.message ?? err) });
  }
};
