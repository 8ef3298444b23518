// The page: slice display, corner placement, results. All computation happens in Web Workers
// (www/engine.js), in our Rust library compiled to wasm; this file only draws and listens.

const LEVELS = ['L1L2', 'L2L3', 'L3L4', 'L4L5', 'L5S1'];
const CLASSES = [['normal', 'Normal'], ['wavy', 'Wavy/irregular'], ['notched', 'Notched'], ['schmorl', "Schmorl's node"]];
const COLOURS = { normal: '#3fbf6f', wavy: '#e6c229', notched: '#ff8c3a', schmorl: '#e0457b' };
const $ = (id) => document.getElementById(id);

// ---- the engine: our wasm library in Web Workers (www/engine.js) -----------------------
import { createEngine } from './engine.js';
const engine = createEngine();
const workerReady = engine.ready;
const call = engine.call;

// ---- state ------------------------------------------------------------------------------
const state = {
  slice: null,          // {info, pixels: Float32Array, name}
  window: null,         // {center, width}
  view: { scale: 1, tx: 0, ty: 0 },
  discs: [],            // {level, corners: [[x,y]...], roi, outline, result, truth}
  current: 0,           // index into LEVELS of the disc being placed
  history: [],
  truth: null,          // phantom ground truth
  model: null,
};

function showError(msg) {
  const e = $('error');
  e.textContent = msg;
  e.hidden = !msg;
}

// ---- drawing ----------------------------------------------------------------------------
const canvas = $('view');
const ctx = canvas.getContext('2d');
const image = document.createElement('canvas');

function renderSliceImage() {
  const { info, pixels } = state.slice;
  image.width = info.width;
  image.height = info.height;
  const ictx = image.getContext('2d');
  const data = ictx.createImageData(info.width, info.height);
  const lo = state.window.center - state.window.width / 2;
  const k = 255 / Math.max(state.window.width, 1e-6);
  for (let i = 0; i < pixels.length; i++) {
    const v = Math.max(0, Math.min(255, (pixels[i] - lo) * k));
    data.data[4 * i] = data.data[4 * i + 1] = data.data[4 * i + 2] = v;
    data.data[4 * i + 3] = 255;
  }
  ictx.putImageData(data, 0, 0);
}

const toScreen = ([x, y]) => [x * state.view.scale + state.view.tx, y * state.view.scale + state.view.ty];
const toImage = (sx, sy) => [(sx - state.view.tx) / state.view.scale, (sy - state.view.ty) / state.view.scale];

function draw() {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!state.slice) return;
  const { scale, tx, ty } = state.view;
  ctx.imageSmoothingEnabled = scale < 2;
  ctx.setTransform(scale, 0, 0, scale, tx, ty);
  ctx.drawImage(image, 0, 0);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  for (const d of state.discs) {
    const colour = d.result ? COLOURS[d.result.label] : '#4aa3ff';
    if (d.outline) {
      ctx.beginPath();
      for (let i = 0; i < 4; i++) {
        const [x, y] = toScreen([d.outline[2 * i], d.outline[2 * i + 1]]);
        i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
      }
      ctx.closePath();
      if (d.result) {
        ctx.fillStyle = colour + '40';
        ctx.fill();
      }
      ctx.strokeStyle = colour;
      ctx.lineWidth = 1;
      ctx.stroke();
    }
    d.corners.forEach((c) => {
      const [x, y] = toScreen(c);
      ctx.beginPath();
      ctx.arc(x, y, 4, 0, 2 * Math.PI);
      ctx.strokeStyle = colour;
      ctx.lineWidth = 2;
      ctx.stroke();
    });
    if (d.corners.length) {
      const [x, y] = toScreen(d.corners[0]);
      ctx.fillStyle = colour;
      ctx.font = '12px system-ui';
      ctx.fillText(d.level + (d.result ? ' ' + d.result.display : ''), x - 10, y - 8);
    }
  }
}

function fit() {
  const { width, height } = state.slice.info;
  const scale = Math.min(canvas.width / width, canvas.height / height);
  state.view = { scale, tx: (canvas.width - width * scale) / 2, ty: (canvas.height - height * scale) / 2 };
}

// ---- guidance and results ---------------------------------------------------------------
function currentDisc() {
  const level = LEVELS[state.current];
  let d = state.discs.find((x) => x.level === level);
  if (!d && level) {
    d = { level, corners: [] };
    state.discs.push(d);
  }
  return d;
}

function updatePrompt() {
  const level = LEVELS[state.current];
  const complete = state.discs.filter((d) => d.corners.length === 4);
  $('prompt').textContent = !state.slice
    ? 'Open a slice (DICOM, PNG or JPEG) or draw a phantom.'
    : level
      ? `Click the four corners of ${level}: the two of the upper vertebra's lower endplate, the two of the lower vertebra's upper endplate.`
      : `All levels done: ${complete.length} disc${complete.length === 1 ? '' : 's'} placed. Classify, or drag corners to adjust.`;
  $('classify-btn').disabled = !complete.length || !state.model;
  $('export-csv').disabled = $('export-json').disabled = !complete.length;
}

function bars(probabilities) {
  return CLASSES.map(([id, name]) => {
    const p = probabilities[id];
    return `<div class="bar" data-class="${id}"><span>${name}</span><span class="track"><span class="fill" data-p="${p}"></span></span><span>${(100 * p).toFixed(1)}%</span></div>`;
  }).join('');
}

function renderResults() {
  const list = $('results');
  list.replaceChildren();
  for (const d of state.discs.filter((x) => x.corners.length === 4)) {
    const li = document.createElement('li');
    li.dataset.level = d.level;
    if (d.result) li.className = d.result.label;
    const preview = document.createElement('canvas');
    preview.width = preview.height = 128;
    if (d.roi) {
      const img = preview.getContext('2d').createImageData(128, 128);
      d.roi.forEach((v, i) => { img.data.set([v, v, v, 255], 4 * i); });
      preview.getContext('2d').putImageData(img, 0, 0);
    }
    const info = document.createElement('div');
    const truth = state.truth?.find((t) => t.level === d.level);
    const reveal = d.result && truth
      ? `<div class="truth ${truth.label === d.result.label ? 'right' : 'wrong'}">Ground truth: ${truth.display} ${truth.label === d.result.label ? '✓' : '✗'}</div>` : '';
    info.innerHTML = `<div class="level">${d.level}</div>` + (d.result
      ? `<div class="class" data-label="${d.result.label}">${d.result.display}</div>${bars(d.result.probabilities)}${reveal}`
      : '<div class="class">not classified yet</div>');
    li.append(preview, info);
    list.append(li);
  }
  // Widths set through the CSSOM: the page's CSP allows no inline style attributes.
  list.querySelectorAll('.fill').forEach((f) => { f.style.width = `${100 * Number(f.dataset.p)}%`; });
}

async function refreshRoi(d) {
  if (d.corners.length !== 4) return;
  try {
    const r = await call('roi', { corners: d.corners.flat() });
    d.roi = r.preview;
    d.outline = r.outline;
    showError('');
  } catch (err) {
    d.roi = d.outline = null;
    showError(`${d.level}: ${err.message}`);
  }
  draw();
  renderResults();
}

// ---- loading ----------------------------------------------------------------------------
function resetDiscs() {
  state.discs = [];
  state.current = 0;
  state.history = [];
  state.truth = null;
  $('truth-btn').hidden = true;
  $('timing').textContent = '';
}

function setSlice(result, name) {
  state.slice = { ...result, name };
  state.window = { center: result.info.window.center, width: result.info.window.width };
  resetDiscs();
  renderSliceImage();
  fit();
  draw();
  renderResults();
  updatePrompt();
}

async function openSlice(file) {
  try {
    const bytes = await file.arrayBuffer();
    setSlice(await call('loadSlice', { bytes, name: file.name }, [bytes]), file.name);
    showError('');
  } catch (err) {
    showError(err.message);
  }
}

function showModel(card) {
  state.model = card;
  $('model-name').textContent = card.summary.name;
  $('card-json').textContent = JSON.stringify(card.card, null, 2);
  const w = card.summary.warning;
  $('warning').textContent = w || '';
  $('warning').hidden = !w;
  updatePrompt();
}

async function loadModel(bytes, name) {
  try {
    showModel(await engine.loadModel(bytes, name));
    showError('');
  } catch (err) {
    showError(`${err.message} — the current model stays active.`);
  }
}

async function importCorners(file) {
  try {
    const text = await file.text();
    const rows = file.name.toLowerCase().endsWith('.json')
      ? JSON.parse(text).results.map((r) => ({ level: r.level, corners: r.corners.flat() }))
      : await call('importCsv', { name: file.name, text });
    if (!state.slice) throw new Error('open the slice these corners belong to first');
    resetDiscs();
    for (const r of rows) {
      if (!r.level) continue;
      const pts = [];
      for (let i = 0; i < 8; i += 2) pts.push([r.corners[i], r.corners[i + 1]]);
      state.discs.push({ level: r.level, corners: pts });
    }
    state.current = LEVELS.length;
    await Promise.all(state.discs.map(refreshRoi));
    updatePrompt();
  } catch (err) {
    showError(`${file.name}: ${err.message}`);
  }
}

// ---- classify and export ----------------------------------------------------------------
async function classify() {
  const done = state.discs.filter((d) => d.corners.length === 4);
  try {
    const r = await engine.classify(done.flatMap((d) => d.corners.flat()));
    done.forEach((d, i) => { d.result = r.results[i]; });
    $('timing').textContent = `${done.length} disc${done.length === 1 ? '' : 's'} classified in ${r.ms.toFixed(0)} ms (${r.workers} worker${r.workers === 1 ? '' : 's'}).`;
    showError('');
  } catch (err) {
    showError(err.message);
  }
  draw();
  renderResults();
}

function download(name, text, type) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

function exportedDiscs() {
  return state.discs.filter((d) => d.corners.length === 4).map((d) => ({
    level: d.level,
    corners: d.corners.flat(),
    truth: state.truth?.find((t) => t.level === d.level)?.label,
    prediction: d.result,
  }));
}

const baseName = () => (state.slice?.name || 'slice').replace(/\.[^.]+$/, '');

async function exportCsv() {
  const csv = await call('exportCsv', { image: state.slice.name, subject: baseName(), discs: exportedDiscs() });
  download(`${baseName()}-endplate.csv`, csv, 'text/csv');
}

function exportJson() {
  const results = exportedDiscs().map((d) => {
    const c = [];
    for (let i = 0; i < 8; i += 2) c.push([d.corners[i], d.corners[i + 1]]);
    return { image: state.slice.name, level: d.level, label: d.prediction?.label ?? null,
      probabilities: d.prediction?.probabilities ?? null, logits: d.prediction?.logits ?? null, corners: c };
  });
  download(`${baseName()}-endplate.json`, JSON.stringify({ model: state.model?.summary, results }, null, 2), 'application/json');
}

// ---- mouse ------------------------------------------------------------------------------
let drag = null;

function hitCorner(sx, sy) {
  for (const d of state.discs) {
    for (let i = 0; i < d.corners.length; i++) {
      const [x, y] = toScreen(d.corners[i]);
      if (Math.hypot(x - sx, y - sy) < 7) return { disc: d, index: i };
    }
  }
  return null;
}

function canvasPoint(e) {
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
}

canvas.addEventListener('contextmenu', (e) => e.preventDefault());
canvas.addEventListener('mousedown', (e) => {
  if (!state.slice) return;
  const [sx, sy] = canvasPoint(e);
  const hit = e.button === 0 && !e.shiftKey ? hitCorner(sx, sy) : null;
  const mode = hit ? 'corner' : e.button === 2 || e.button === 1 || e.shiftKey ? 'pan' : 'press';
  drag = { mode, hit, sx, sy, moved: false, window: { ...state.window }, view: { ...state.view } };
});
window.addEventListener('mousemove', (e) => {
  if (!drag) return;
  const [sx, sy] = canvasPoint(e);
  const dx = sx - drag.sx;
  const dy = sy - drag.sy;
  if (Math.hypot(dx, dy) > 3) drag.moved = true;
  if (!drag.moved) return;
  if (drag.mode === 'corner') {
    drag.hit.disc.corners[drag.hit.index] = toImage(sx, sy);
    draw();
  } else if (drag.mode === 'pan') {
    state.view.tx = drag.view.tx + dx;
    state.view.ty = drag.view.ty + dy;
    draw();
  } else {
    // Window/level: horizontal drag widens the window, vertical drag moves its centre.
    const range = Math.max(drag.window.width, 1);
    state.window.width = Math.max(1e-3, drag.window.width * Math.exp(dx / 200));
    state.window.center = drag.window.center - dy * range / 300;
    renderSliceImage();
    draw();
  }
});
window.addEventListener('mouseup', (e) => {
  if (!drag) return;
  const d = drag;
  drag = null;
  if (d.mode === 'corner' && d.moved) {
    d.hit.disc.result = null;
    refreshRoi(d.hit.disc);
  } else if (d.mode === 'press' && !d.moved) {
    placeCorner(toImage(d.sx, d.sy));
  }
  updatePrompt();
});
canvas.addEventListener('wheel', (e) => {
  if (!state.slice) return;
  e.preventDefault();
  const [sx, sy] = canvasPoint(e);
  const f = Math.exp(-e.deltaY / 500);
  state.view.tx = sx - (sx - state.view.tx) * f;
  state.view.ty = sy - (sy - state.view.ty) * f;
  state.view.scale *= f;
  draw();
}, { passive: false });

function placeCorner(p) {
  const d = currentDisc();
  if (!d) return;
  d.corners.push(p);
  state.history.push(d);
  if (d.corners.length === 4) {
    state.current = LEVELS.findIndex((l, i) => i > state.current && !state.discs.find((x) => x.level === l && x.corners.length === 4));
    if (state.current < 0) state.current = LEVELS.length;
    refreshRoi(d);
  }
  draw();
  updatePrompt();
}

// ---- buttons ----------------------------------------------------------------------------
$('slice-input').addEventListener('change', (e) => e.target.files[0] && openSlice(e.target.files[0]));
$('model-input').addEventListener('change', async (e) => {
  const f = e.target.files[0];
  if (f) loadModel(await f.arrayBuffer(), f.name);
});
$('import-input').addEventListener('change', (e) => e.target.files[0] && importCorners(e.target.files[0]));
$('export-csv').addEventListener('click', exportCsv);
$('export-json').addEventListener('click', exportJson);
$('classify-btn').addEventListener('click', classify);
$('skip-btn').addEventListener('click', () => {
  const d = currentDisc();
  if (d && d.corners.length < 4) state.discs = state.discs.filter((x) => x !== d);
  state.current = Math.min(state.current + 1, LEVELS.length);
  updatePrompt();
  draw();
});
$('undo-btn').addEventListener('click', () => {
  const d = state.history.pop();
  if (!d) return;
  d.corners.pop();
  d.result = d.roi = d.outline = null;
  state.current = LEVELS.indexOf(d.level);
  draw();
  renderResults();
  updatePrompt();
});
$('clear-btn').addEventListener('click', () => {
  const truth = state.truth;
  resetDiscs();
  state.truth = truth;
  $('truth-btn').hidden = !truth;
  draw();
  renderResults();
  updatePrompt();
});
$('phantom-btn').addEventListener('click', async () => {
  try {
    const seed = Math.floor(Math.random() * 2 ** 31);
    const r = await call('newPhantom', { seed });
    setSlice(r, `phantom-${seed}.png`);
    state.truth = r.truth;
    $('truth-btn').hidden = false;
    showError('');
  } catch (err) {
    showError(err.message);
  }
});
$('truth-btn').addEventListener('click', async () => {
  const truth = state.truth;
  resetDiscs();
  state.truth = truth;
  state.discs = truth.map((t) => ({ level: t.level, corners: t.corners.map((c) => [...c]) }));
  state.current = LEVELS.length;
  $('truth-btn').hidden = false;
  await Promise.all(state.discs.map(refreshRoi));
  updatePrompt();
});
// Drag and drop anywhere: .onnx loads a model, .csv/.json restores corners, anything else is a slice.
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', async (e) => {
  e.preventDefault();
  const f = e.dataTransfer.files[0];
  if (!f) return;
  const n = f.name.toLowerCase();
  if (n.endsWith('.onnx')) loadModel(await f.arrayBuffer(), f.name);
  else if (n.endsWith('.csv') || n.endsWith('.json')) importCorners(f);
  else openSlice(f);
});

// ---- start: the bundled model, fetched from this origin only ----------------------------
(async () => {
  // The model downloads while the page compiles the wasm and the first worker starts.
  const download = fetch('models/endplate-default.onnx');
  try {
    await workerReady;
    const res = await download;
    if (!res.ok) throw new Error(`the bundled model is missing (HTTP ${res.status}); load one with "Load model"`);
    await loadModel(await res.arrayBuffer(), 'endplate-default.onnx');
  } catch (err) {
    $('model-name').textContent = 'none';
    showError(err.message);
  }
  document.body.dataset.ready = 'true';
  draw();
  updatePrompt();
})();
