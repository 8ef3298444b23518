// The page: slice display, corner placement, results. All computation happens in Web Workers
// (www/engine.js), in our Rust library compiled to wasm; this file only draws and listens.

const LEVELS = ['L1L2', 'L2L3', 'L3L4', 'L4L5', 'L5S1'];
const CLASSES = [['normal', 'Normal'], ['wavy', 'Wavy/irregular'], ['notched', 'Notched'], ['schmorl', "Schmorl's node"]];
const COLOURS = { normal: '#3fbf6f', wavy: '#e6c229', notched: '#ff8c3a', schmorl: '#e0457b' };
const $ = (id) => document.getElementById(id);

// The page's call follows P(lesion) = 1 − P(normal) ≥ 0.5 (SPEC.md's operating point, the figure
// real gradings check), naming a lesion by its most likely type. The exported `label` stays the
// four-class argmax that SPEC.md fixes; the two differ only when normal is the largest single
// class yet below one half.
function verdict(result) {
  const p = result.probabilities;
  if (p.normal > 0.5) return { label: 'normal', display: 'Normal' };
  const [id, name] = CLASSES.slice(1).reduce((a, b) => (p[b[0]] > p[a[0]] ? b : a));
  return { label: id, display: name };
}

// ---- the engine: our wasm library in Web Workers (www/engine.js) -----------------------
import { createEngine } from './engine.js';
import { keptModels, keepModel, keptModel, forgetModel } from './store.js';
import { createAdaptation } from './adapt.js';
import { createStudy } from './study.js';
import { drawScaleBar } from './scalebar.js';
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
  modelSource: null,    // 'bundled', 'file' or 'kept'
  userModel: null,      // {name, bytes}: the classifier file loaded by the user, which "Keep" stores
  detector: null,       // the disc detector's card, null while none is loaded
};

// Studies (www/study.js): series list, slice navigation, per-slice discs.
const study = createStudy({
  call,
  showSlice: (result, name, opts) => setSlice(result, name, opts),
  snapshot: () => ({ discs: state.discs, current: state.current, history: state.history, truth: state.truth, timing: $('timing').textContent }),
  detect: () => detectDiscs(),
  showError,
});

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
    const colour = d.result ? COLOURS[verdict(d.result).label] : '#4aa3ff';
    if (d.outline) {
      ctx.beginPath();
      for (let i = 0; i < 4; i++) {
        const [x, y] = toScreen([d.outline[2 * i], d.outline[2 * i + 1]]);
        i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
      }
      ctx.closePath();
      if (d.result && !d.evidence) {
        ctx.fillStyle = colour + '40';
        ctx.fill();
      }
      if (d.evidence) drawEvidenceOnSlice(d);
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
      ctx.fillText(d.level + (d.result ? ' ' + verdict(d.result).display : ''), x - 10, y - 8);
    }
  }
  const bar = drawScaleBar(ctx, state.slice.info.spacing_mm, state.view.scale);
  canvas.dataset.scalebar = bar ? `${bar.mm} mm` : '';
}

function fit() {
  const { width, height } = state.slice.info;
  const scale = Math.min(canvas.width / width, canvas.height / height);
  state.view = { scale, tx: (canvas.width - width * scale) / 2, ty: (canvas.height - height * scale) / 2 };
}

// ---- evidence maps ----------------------------------------------------------------------
// Occlusion sensitivity, computed on demand in a worker (engine.evidence): a gray patch slides
// over the disc's ROI and the map shows how far the predicted class's probability falls where
// it hides the disc. Drawn over the ROI preview and, through the ROI's own geometry, over the
// disc on the slice.
function evidenceCanvas(d) {
  if (d.evidence.canvas) return d.evidence.canvas;
  const n = d.evidence.size;
  const c = Object.assign(document.createElement('canvas'), { width: n, height: n });
  const img = c.getContext('2d').createImageData(n, n);
  img.data.set(Uint8ClampedArray.from(d.evidence.rgba));
  c.getContext('2d').putImageData(img, 0, 0);
  d.evidence.canvas = c;
  return c;
}

/// The ROI's content rectangle (it keeps the disc's aspect, centred in the square) mapped onto
/// the disc's outline on the slice, as the library cuts it (disc/roi.rs).
function drawEvidenceOnSlice(d) {
  const o = d.outline;
  const n = d.evidence.size;
  const w = Math.hypot(o[2] - o[0], o[3] - o[1]);
  const h = Math.hypot(o[6] - o[0], o[7] - o[1]);
  const long = Math.max(w, h);
  const ow = Math.min(n, Math.max(1, Math.round(w * n / long)));
  const oh = Math.min(n, Math.max(1, Math.round(h * n / long)));
  const x0 = Math.floor((n - ow) / 2);
  const y0 = Math.floor((n - oh) / 2);
  const { scale: s, tx, ty } = state.view;
  const ux = (o[2] - o[0]) / ow, uy = (o[3] - o[1]) / ow;
  const vx = (o[6] - o[0]) / oh, vy = (o[7] - o[1]) / oh;
  ctx.save();
  ctx.setTransform(ux * s, uy * s, vx * s, vy * s,
    (o[0] - x0 * ux - y0 * vx) * s + tx, (o[1] - x0 * uy - y0 * vy) * s + ty);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(evidenceCanvas(d), x0, y0, ow, oh, x0, y0, ow, oh);
  ctx.restore();
}

function evidenceControl(d) {
  const box = document.createElement('div');
  box.className = 'evidence';
  const b = Object.assign(document.createElement('button'), { type: 'button', className: 'evidence-btn' });
  b.textContent = d.evidence ? 'Hide where it looked' : 'Where it looked';
  b.addEventListener('click', () => showEvidence(d, b));
  box.append(b);
  if (d.evidence) {
    const e = d.evidence;
    const legend = document.createElement('div');
    legend.className = 'evidence-legend';
    legend.innerHTML = `<span class="evidence-scale"></span> Hiding a spot with a ${e.patch}-pixel gray patch (every ${e.stride} px of the 128-px ROI, ${e.runs} runs) lowers P(${e.display}) from ${(100 * e.probability).toFixed(0)}%: yellow a little, red by ${(100 * e.scale).toFixed(0)} points (this map's largest); no colour, not at all. Computed in ${e.ms.toFixed(0)} ms.`;
    box.append(legend);
  }
  return box;
}

async function showEvidence(d, button) {
  if (d.evidence) {
    d.evidence = null;
  } else {
    button.disabled = true;
    button.textContent = 'Computing…';
    try {
      d.evidence = await engine.evidence(d.corners.flat());
      showError('');
    } catch (err) {
      showError(`${d.level}: ${err.message}`);
    }
  }
  draw();
  renderResults();
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
    ? 'Open a study (a folder or zip of DICOM files), a slice (DICOM, PNG or JPEG), or draw a phantom.'
    : level
      ? `Click the four corners of ${level}: the two of the upper vertebra's lower endplate, the two of the lower vertebra's upper endplate.`
      : `All levels done: ${complete.length} disc${complete.length === 1 ? '' : 's'} placed. Classify, or drag corners to adjust.`;
  $('classify-btn').disabled = !complete.length || !state.model;
  $('export-csv').disabled = $('export-json').disabled = !complete.length;
}

// P(lesion) = 1 − P(normal) is the figure real gradings can check (SPEC.md); the split among
// the three lesion types was learnt from phantoms only, and the page says so.
function lesionBar(probabilities) {
  const p = 1 - probabilities.normal;
  return `<div class="bar lesion" data-class="lesion"><span>P(lesion)</span><span class="track"><span class="fill" data-p="${p}"></span></span><span>${(100 * p).toFixed(1)}%</span></div>`
    + '<div class="types-note">Lesion type (learnt from phantoms only):</div>';
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
    if (d.result) li.className = verdict(d.result).label;
    const preview = document.createElement('canvas');
    preview.width = preview.height = 128;
    if (d.roi) {
      const img = preview.getContext('2d').createImageData(128, 128);
      d.roi.forEach((v, i) => { img.data.set([v, v, v, 255], 4 * i); });
      preview.getContext('2d').putImageData(img, 0, 0);
      if (d.evidence) preview.getContext('2d').drawImage(evidenceCanvas(d), 0, 0);
    }
    const info = document.createElement('div');
    const truth = state.truth?.find((t) => t.level === d.level);
    const reveal = d.result && truth
      ? `<div class="truth ${truth.label === verdict(d.result).label ? 'right' : 'wrong'}">Ground truth: ${truth.display} ${truth.label === verdict(d.result).label ? '✓' : '✗'}</div>` : '';
    info.innerHTML = `<div class="level">${d.level}</div>` + (d.result
      ? `<div class="class" data-label="${verdict(d.result).label}">${verdict(d.result).display}</div>${lesionBar(d.result.probabilities)}${bars(d.result.probabilities)}${reveal}`
      : '<div class="class">not classified yet</div>');
    if (d.result) info.append(evidenceControl(d));
    if (d.roi) info.append(adaptation.labelControl(d));
    li.append(preview, info, removeButton(d));
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
    d.evidence = null;
    showError('');
    await adaptation.discMoved(d);
  } catch (err) {
    d.roi = d.outline = null;
    showError(`${d.level}: ${err.message}`);
  }
  draw();
  renderResults();
}

// ---- disc detection ---------------------------------------------------------------------
// Opening a slice runs the detector in the primary worker; the lumbar discs it finds (L1L2-L5S1)
// become ordinary discs, with draggable corners, ready to classify. Discs found above L1L2
// (T12L1, ...) are only counted in the message: the classifier does not take them.
let detectorSettled;
const detectorReady = new Promise((resolve) => { detectorSettled = resolve; });
let detectionRuns = 0;

function detectionStatus(kind, text) {
  const el = $('detection');
  el.dataset.state = kind;
  el.textContent = text;
}

function showDetector(card) {
  state.detector = card;
  $('detect-btn').disabled = !state.slice;
  detectionStatus('ready', `Disc detector ${card.summary.name} loaded: opening a slice proposes its discs; "Detect discs" runs it again.`);
}

async function startDetector(download) {
  try {
    const res = await download;
    if (res instanceof Error) throw new Error(`the detector models/endplate-detector.onnx could not be fetched (${res.message})`);
    if (!res.ok) throw new Error(`the detector models/endplate-detector.onnx is missing (HTTP ${res.status})`);
    const bytes = await res.arrayBuffer();
    try {
      showDetector(await engine.loadDetector(bytes, 'endplate-detector.onnx'));
    } catch (err) {
      throw new Error(`the detector file could not be loaded: ${err.message}`);
    }
  } catch (err) {
    state.detector = null;
    $('detect-btn').disabled = true;
    detectionStatus('off', `Automatic disc detection is off: ${err.message}. Place the corners by hand, as the prompt says, or load a detector file with "Load model".`);
  }
  detectorSettled();
}

const firstMissingLevel = () => {
  const i = LEVELS.findIndex((l) => !state.discs.find((d) => d.level === l && d.corners.length === 4));
  return i < 0 ? LEVELS.length : i;
};

function detectionMessage(r, shown) {
  const ms = `${r.ms.toFixed(0)} ms`;
  const plural = (n) => `${n} disc${n === 1 ? '' : 's'}`;
  // What the file's own orientation says is wrong (a DICOM mirrored, turned or not sagittal).
  const warned = r.warning ? `Note: ${r.warning[0].toUpperCase()}${r.warning.slice(1)}. ` : '';
  return warned + detectionText(r, ms, plural, shown);
}

function detectionText(r, ms, plural, shown) {
  if (!r.discs.length) return `No discs found (${ms}). Is this a sagittal slice of the lumbar spine? If it is, place the corners by hand.`;
  if (r.discs.every((d) => !d.level)) return `${plural(r.discs.length)} found in ${ms} but no sacrum, so their levels cannot be named: place the corners by hand.`;
  const lumbar = r.discs.filter((d) => LEVELS.includes(d.level));
  const above = r.discs.length - lumbar.length;
  const weak = lumbar.filter((d) => d.score < 0.5).map((d) => `${d.level} (${d.score.toFixed(2)})`);
  // Levels of a slice stored upside down are counted from the sacrum at its top, and its discs
  // are classified turned upright (the worker cuts their regions from the turned slice).
  const turned = r.upside_down ? 'This slice is stored upside down (sacrum at the top): levels are counted from the sacrum and each disc is classified the right way up. ' : '';
  return turned + `${plural(lumbar.length)} found in ${ms}`
    + (lumbar.length ? ` (${lumbar[0].level}–${lumbar[lumbar.length - 1].level})` : '')
    + (above ? `; ${above} above L1L2 not shown (not classified)` : '')
    + (shown < lumbar.length ? `; ${lumbar.length - shown} kept as you placed them` : '')
    + (weak.length ? `. Low scores, check: ${weak.join(', ')}` : '')
    + '. Drag a corner to adjust, × removes a disc, click to add a missed one.';
}

/// Detect the discs of the open slice. `replace` (the "Detect discs" button) drops every disc
/// first; otherwise (a slice just opened) discs the user placed meanwhile stay.
async function detectDiscs({ replace = false } = {}) {
  const slice = state.slice;
  await detectorReady;
  if (!slice || state.slice !== slice) return;
  if (!state.detector) {
    $('detection').dataset.runs = ++detectionRuns;
    return;
  }
  detectionStatus('running', 'Finding discs…');
  $('detect-btn').disabled = true;
  try {
    const r = await engine.detect();
    if (state.slice !== slice) return; // another slice opened meanwhile: its own run reports
    if (replace) {
      state.discs = [];
      state.history = [];
      $('timing').textContent = '';
    }
    const placed = new Set(state.discs.filter((d) => d.corners.length).map((d) => d.level));
    state.discs = state.discs.filter((d) => d.corners.length);
    const found = r.discs.filter((d) => LEVELS.includes(d.level) && !placed.has(d.level))
      .map((d) => ({ level: d.level, corners: d.corners.map(([x, y]) => [x, y]), score: d.score, detected: true }));
    state.discs.push(...found);
    state.discs.sort((a, b) => LEVELS.indexOf(a.level) - LEVELS.indexOf(b.level));
    state.current = firstMissingLevel();
    await Promise.all(found.map(refreshRoi));
    if (state.slice !== slice) return;
    detectionStatus('done', detectionMessage(r, found.length));
  } catch (err) {
    if (state.slice === slice) detectionStatus('failed', `Detection failed (${err.message}); place the corners by hand.`);
  } finally {
    if (state.slice === slice) {
      $('detect-btn').disabled = !state.detector;
      $('detection').dataset.runs = ++detectionRuns;
      draw();
      renderResults();
      updatePrompt();
    }
  }
}

function removeDisc(d) {
  adaptation.discRemoved(d);
  state.discs = state.discs.filter((x) => x !== d);
  state.history = state.history.filter((x) => x !== d);
  // Unless a disc is half placed, the next clicks place the first level now missing.
  const cur = state.discs.find((x) => x.level === LEVELS[state.current]);
  if (!(cur && cur.corners.length > 0 && cur.corners.length < 4)) state.current = firstMissingLevel();
  draw();
  renderResults();
  updatePrompt();
}

function removeButton(d) {
  const b = Object.assign(document.createElement('button'), { type: 'button', className: 'remove', textContent: '×', title: `Remove ${d.level}` });
  b.setAttribute('aria-label', `Remove ${d.level}`);
  b.addEventListener('click', () => removeDisc(d));
  return b;
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

/// Show a decoded slice. A study's slice (www/study.js) comes with `study` (series and index,
/// kept for the exports) and, when it was shown before, `restore`: its discs as they were left.
function setSlice(result, name, { restore = null, study: from = null } = {}) {
  state.slice = { ...result, name, study: from };
  state.window = { center: result.info.window.center, width: result.info.window.width };
  resetDiscs();
  if (restore) {
    Object.assign(state, { discs: restore.discs, current: restore.current, history: restore.history, truth: restore.truth });
    $('timing').textContent = restore.timing;
    $('truth-btn').hidden = !restore.truth;
  }
  study.showing(state.slice);
  renderSliceImage();
  fit();
  draw();
  renderResults();
  updatePrompt();
  $('detect-btn').disabled = !state.detector;
}

async function openSlice(file) {
  try {
    const bytes = await file.arrayBuffer();
    setSlice(await call('loadSlice', { bytes, name: file.name }, [bytes]), file.name);
    showError('');
  } catch (err) {
    showError(err.message);
    return;
  }
  await detectDiscs();
}

function showModel(card) {
  state.model = card;
  $('model-name').textContent = card.summary.name;
  $('card-json').textContent = JSON.stringify(card.card, null, 2);
  const w = card.summary.warning;
  $('warning').textContent = w || '';
  $('warning').hidden = !w;
  const figures = card.summary.figures || [];
  $('model-figures').replaceChildren(...figures.map((f) => Object.assign(document.createElement('p'), { textContent: f })));
  $('model-figures').hidden = figures.length === 0;
  updatePrompt();
}

/// Load a classifier (or a detector file) into the engine. `source`: 'bundled' (this origin's
/// models/), 'file' (opened or dropped by the user: it can be kept), 'kept' (from this
/// browser's storage).
async function loadModel(bytes, name, source = 'file') {
  // The engine takes the bytes (transferred to its worker): keep a copy of a user's file.
  const copy = source === 'file' ? bytes.slice(0) : null;
  try {
    const card = await engine.loadModel(bytes, name);
    if (card.kind === 'detector') showDetector(card);
    else {
      showModel(card);
      adaptation.modelLoaded();
      state.modelSource = source;
      state.userModel = copy && { name, bytes: copy };
      $('model-name').dataset.source = source === 'bundled' ? 'bundled' : `${source}:${name}`;
      await refreshKept(source === 'kept' ? name : source === 'bundled' ? '' : null);
    }
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
    done.forEach((d, i) => { d.result = r.results[i]; d.evidence = null; });
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

const baseName = () => (state.slice?.name || 'slice').split('/').pop().replace(/\.[^.]+$/, '');

/// Where the exported corners belong: the file, its pixel spacing and, for a study's slice, the
/// series and the slice's index in it.
const exportContext = () => ({ file: state.slice.name, spacing_mm: state.slice.info.spacing_mm ?? null, ...(state.slice.study ?? {}) });

async function exportCsv() {
  const csv = await call('exportCsv', { image: state.slice.name, subject: baseName(), discs: exportedDiscs(), context: exportContext() });
  download(`${baseName()}-endplate.csv`, csv, 'text/csv');
}

function exportJson() {
  const results = exportedDiscs().map((d) => {
    const c = [];
    for (let i = 0; i < 8; i += 2) c.push([d.corners[i], d.corners[i + 1]]);
    return { image: state.slice.name, level: d.level, label: d.prediction?.label ?? null,
      probabilities: d.prediction?.probabilities ?? null, logits: d.prediction?.logits ?? null, corners: c };
  });
  download(`${baseName()}-endplate.json`, JSON.stringify({ model: state.model?.summary, source: exportContext(), results }, null, 2), 'application/json');
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
  if (!state.slice || study.onWheel(e)) return;
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
  // The last detection's message ("5 discs found…") no longer describes the slice.
  if (state.detector && state.slice) detectionStatus('cleared', 'Discs cleared: place the corners by hand, or press Detect discs to propose them again.');
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
    return;
  }
  await detectDiscs();
});
$('detect-btn').addEventListener('click', () => detectDiscs({ replace: true }));
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
// Drag and drop anywhere: a folder, several files or a zip is a study (www/study.js); one .onnx
// loads a model, .csv/.json restores corners, anything else is a slice.
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', async (e) => {
  e.preventDefault();
  if (study.takeDrop(e.dataTransfer)) return;
  const f = e.dataTransfer.files[0];
  if (!f) return;
  const n = f.name.toLowerCase();
  if (n.endsWith('.onnx')) loadModel(await f.arrayBuffer(), f.name);
  else if (n.endsWith('.csv') || n.endsWith('.json')) importCorners(f);
  else openSlice(f);
});

// ---- models kept in this browser (www/store.js: IndexedDB, never uploaded) ---------------
const keptStatus = (text) => { $('kept-status').textContent = text; };

/// Redraw the list of kept models; `selected`: the name to show as chosen ('' the bundled
/// model, null: leave the choice as it is).
async function refreshKept(selected = null) {
  let models = [];
  try {
    models = await keptModels();
  } catch (err) {
    keptStatus(`This browser's storage is not available (${err.message ?? err}): models cannot be kept.`);
  }
  const select = $('kept-select');
  const current = selected ?? select.value;
  select.replaceChildren(new Option('Bundled model', ''),
    ...models.map((m) => new Option(`${m.name} (${(m.size / 1e6).toFixed(1)} MB)`, m.name)));
  select.value = models.some((m) => m.name === current) ? current : '';
  $('kept-list').hidden = models.length === 0;
  $('forget-btn').disabled = !select.value;
  const user = state.userModel;
  $('keep-btn').hidden = !user || models.some((m) => m.name === user.name && m.size === user.bytes.byteLength);
}

$('keep-btn').addEventListener('click', async () => {
  const user = state.userModel;
  if (!user) return;
  try {
    await keepModel(user.name, user.bytes.slice(0));
    keptStatus(`${user.name} is kept in this browser (not uploaded); choose it here on your next visit.`);
    await refreshKept(user.name);
  } catch (err) {
    keptStatus(`${user.name} could not be kept: ${err.message ?? err}`);
  }
});

$('kept-select').addEventListener('change', async (e) => {
  const name = e.target.value;
  $('forget-btn').disabled = !name;
  try {
    if (name) {
      const bytes = await keptModel(name);
      if (!bytes) throw new Error('it is no longer in this browser\'s storage');
      await loadModel(bytes, name, 'kept');
      keptStatus(`Using ${name}, kept in this browser.`);
    } else {
      const res = await fetch(new URL('models/endplate-default.onnx', import.meta.url));
      if (!res.ok) throw new Error(`the bundled model is missing (HTTP ${res.status})`);
      await loadModel(await res.arrayBuffer(), 'endplate-default.onnx', 'bundled');
      keptStatus('Using the bundled model.');
    }
  } catch (err) {
    showError(`${name || 'The bundled model'} could not be loaded: ${err.message}`);
  }
});

$('forget-btn').addEventListener('click', async () => {
  const name = $('kept-select').value;
  if (!name) return;
  await forgetModel(name);
  keptStatus(`${name} is forgotten: removed from this browser's storage${state.modelSource === 'kept' && state.model ? ' (it stays loaded until you choose another model or reload)' : ''}.`);
  await refreshKept(null);
});

// ---- version, and the service worker of the installable build ---------------------------
// `./build.sh dist` stamps the crate version and a build id (a hash of the files) on <html>;
// only that build registers the service worker (www/sw.js), so `./build.sh serve` caches nothing.
const { version: appVersion, build: appBuild } = document.documentElement.dataset;
if (appBuild) $('version').textContent = `endplate ${appVersion} · build ${appBuild}`;
if (appBuild && 'serviceWorker' in navigator) {
  navigator.serviceWorker.addEventListener('message', ({ data }) => {
    if (data?.type === 'build' && data.build !== appBuild) $('update').hidden = false;
  });
  // A newer build took over while this page ran: offer to reload onto it.
  navigator.serviceWorker.addEventListener('controllerchange', () => navigator.serviceWorker.controller?.postMessage('build'));
  navigator.serviceWorker.controller?.postMessage('build');
  $('update-btn').addEventListener('click', () => location.reload());
}
// Registered once the page is ready, so its downloads never compete with the page's own.
const registerServiceWorker = () => appBuild && 'serviceWorker' in navigator
  && navigator.serviceWorker.register('sw.js').catch((err) => console.warn(`offline use is off: ${err.message}`));

// ---- adapting the model to the user's labelled discs (www/adapt.js) ---------------------
const adaptation = createAdaptation({
  engine,
  loadModel,
  reclassify: () => state.discs.some((d) => d.result) && classify(),
  // A study's slices are one patient's series: the held-out split keeps the series whole, and a
  // disc labelled on two of its slices is one disc (the later label wins).
  subject: () => state.slice?.study?.series_uid ?? baseName(),
});

// ---- start: the bundled model, fetched from this origin only ----------------------------
(async () => {
  // The model downloads while the page compiles the wasm and the first worker starts.
  const download = fetch(new URL('models/endplate-default.onnx', import.meta.url));
  // The disc detector (2 MB) downloads alongside and loads after the classifier, so page ready
  // is the classifier's alone; a slice opened meanwhile waits for it (detectDiscs).
  const detector = fetch(new URL('models/endplate-detector.onnx', import.meta.url)).catch((err) => err);
  try {
    await workerReady;
    const res = await download;
    if (!res.ok) throw new Error(`the bundled model is missing (HTTP ${res.status}); load one with "Load model"`);
    await loadModel(await res.arrayBuffer(), 'endplate-default.onnx', 'bundled');
  } catch (err) {
    $('model-name').textContent = 'none';
    showError(err.message);
  }
  await refreshKept();
  document.body.dataset.ready = 'true';
  registerServiceWorker();
  draw();
  updatePrompt();
  await startDetector(detector);
})();
