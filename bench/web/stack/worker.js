// The diagnosis's worker: the wasm library alone (?wasm=relaxed|simd), one slice and the bundled
// detector, and `detect` called through `depth` extra JavaScript frames, which moves the machine
// stack under the wasm code by a JavaScript frame's size each.
const variant = new URL(self.location.href).searchParams.get('wasm') ?? 'relaxed';
const { default: init, Endplate } = await import(`../../pkg/${variant}/endplate.js`);
await init({ module_or_path: new URL(`../../pkg/${variant}/endplate_bg.wasm`, self.location.href) });
const ep = new Endplate();
const through = (depth) => (depth ? through(depth - 1) : ep.detect());
onmessage = ({ data: { type, bytes, name, depth } }) => {
  try {
    if (type === 'model') ep.loadModel(new Uint8Array(bytes), name);
    if (type === 'detector') ep.loadDetector(new Uint8Array(bytes), name);
    if (type === 'slice') ep.loadSlice(new Uint8Array(bytes), name);
    postMessage({ ok: true, ms: type === 'detect' ? through(depth).milliseconds : 0 });
  } catch (err) {
    postMessage({ ok: false, error: String(err?.message ?? err) });
  }
};
postMessage({ ready: true });
