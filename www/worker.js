// Runs the wasm library off the main thread: the page stays responsive while a slice decodes
// or the network runs. Speaks {id, type, ...} in, {id, ok, result | error} out.
import init, { Endplate } from './pkg/endplate.js';

let ep;
const ready = init().then(() => { ep = new Endplate(); postMessage({ type: 'ready' }); });

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
