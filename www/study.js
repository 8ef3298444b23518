// Studies in the page: a dropped or picked folder, several files or a zip, read by the wasm
// library in the primary worker (src/study/: series, slice order, the proposed sagittal T2 series
// and its mid-sagittal slice), a series list, and slice navigation with the mouse wheel and the
// arrow keys. Every slice keeps its own discs and results: leaving a slice saves them, coming
// back restores them, and only a slice seen for the first time is sent to the disc detector.
//
// The page keeps the study's files (File objects, read again when a slice is shown); a zip stays
// in the worker, which reads its entries. app.js gives this module a few hooks (createStudy).

const $ = (id) => document.getElementById(id);

/// A slice is sent to the detector once it has been shown this long without moving on, so
/// scrolling through a series does not queue a detection per slice passed.
const DETECT_AFTER_MS = 250;
/// Wheel travel (pixels) for one slice: one notch of a mouse wheel, a short trackpad swipe.
const WHEEL_STEP = 50;

/// `app`: { call, showSlice(result, name, { restore, study }), snapshot(), detect(), showError }.
export function createStudy(app) {
  let study = null; // what the worker's studyFinish returned
  let files = new Map(); // study name -> File (zip entries stay in the worker)
  let unread = []; // files the browser could not read: { name, reason }
  let generation = 0; // a new study cancels what the previous one was doing
  let series = -1; // the series being navigated
  let shown = { series: -1, slice: -1 };
  let wanted = -1;
  let loading = false;
  let current = null; // the shown study slice's key, null while a slice from elsewhere is shown
  const saved = new Map(); // slice key -> app.snapshot()
  const last = new Map(); // series uid -> the slice last shown in it
  const detected = new Set(); // slice keys whose detection finished
  let detectTimer = null;
  let wheel = 0;

  const key = (si, k) => `${study.series[si].uid}#${k}`;
  const plural = (n, word) => `${n} ${word}${n === 1 || word === 'series' ? '' : 's'}`;
  const status = (text) => { $('study-status').textContent = text; };

  /// Read a study from `list` ({ file, name } each; name the path within the study).
  async function open(list) {
    const gen = ++generation;
    leave(); // the slice on screen belongs to the old study: its discs go nowhere
    current = null;
    files = new Map();
    unread = [];
    saved.clear();
    last.clear();
    detected.clear();
    study = null;
    series = wanted = -1;
    shown = { series: -1, slice: -1 };
    $('study').hidden = false;
    $('series-list').replaceChildren();
    $('study-skipped').hidden = true;
    status(`Reading ${plural(list.length, 'file')}…`);
    await app.call('studyBegin');
    let done = 0;
    for (const { file, name } of list) {
      if (gen !== generation) return;
      try {
        const bytes = await file.arrayBuffer();
        const r = await app.call('studyAdd', { bytes, name }, [bytes]);
        if (r.kind === 'file') files.set(name, file);
      } catch (err) {
        unread.push({ name, reason: `could not be read (${err.message ?? err})` });
      }
      if (++done % 20 === 0) status(`Reading the study: ${done} of ${list.length} files…`);
    }
    const found = await app.call('studyFinish');
    if (gen !== generation) return;
    study = found;
    study.skipped.push(...unread);
    renderList();
    if (!study.series.length) {
      status(`No DICOM image series among ${plural(list.length, 'file')}: see the skipped files below.`);
      app.showError('No DICOM image series found in what was opened; the skipped files say why.');
      return;
    }
    if (study.proposed == null) {
      status(`${plural(study.series.length, 'series')}, none of them sagittal: choose one to view it (the classifier needs a sagittal slice).`);
      return;
    }
    const s = study.series[study.proposed];
    status(`${plural(study.series.length, 'series')}; proposed: ${s.description || '(no description)'}, its mid-sagittal slice ${study.mid_slices[study.proposed] + 1} of ${s.slices.length}.`);
    await selectSeries(study.proposed);
  }

  function renderList() {
    const ol = $('series-list');
    ol.replaceChildren(...study.series.map((s, i) => {
      const li = document.createElement('li');
      li.dataset.index = i;
      li.dataset.plane = s.plane;
      li.dataset.slices = s.slices.length;
      if (i === study.proposed) li.dataset.proposed = 'true';
      const b = Object.assign(document.createElement('button'), { type: 'button', className: 'series' });
      const name = Object.assign(document.createElement('span'), { className: 'series-name', textContent: s.description || '(no description)' });
      const meta = Object.assign(document.createElement('span'), { className: 'series-meta' });
      meta.textContent = [s.plane, plural(s.slices.length, 'slice'), s.number != null ? `series ${s.number}` : null,
        i === study.proposed ? 'proposed: sagittal T2' : null].filter(Boolean).join(' · ');
      b.append(name, meta);
      b.addEventListener('click', () => selectSeries(i));
      li.append(b);
      return li;
    }));
    const notes = study.dicomdirs.map((d) => `${d.name} lists ${plural(d.listed, 'file')}`
      + (d.missing.length ? `; ${d.missing.length} missing: ${d.missing.slice(0, 5).join(', ')}${d.missing.length > 5 ? ', …' : ''}` : ', all present'));
    $('study-dicomdir').textContent = notes.join('. ');
    $('study-dicomdir').hidden = !notes.length;
    const skipped = study.skipped;
    $('study-skipped').hidden = !skipped.length;
    $('study-skipped-count').textContent = `${plural(skipped.length, 'file')} skipped`;
    $('study-skipped-list').replaceChildren(...skipped.map((f) => Object.assign(document.createElement('li'), { textContent: `${f.name}: ${f.reason}` })));
  }

  async function selectSeries(i) {
    series = i;
    $('series-list').querySelectorAll('li').forEach((li) => li.classList.toggle('selected', Number(li.dataset.index) === i));
    const s = study.series[i];
    // The mid-sagittal slice on first visit; the slice last shown there when coming back.
    await go(last.get(s.uid) ?? study.mid_slices[i]);
  }

  /// Show slice `k` of the selected series. Requests made while one loads only move the target,
  /// so a fast wheel skips the slices in between.
  async function go(k) {
    const s = study?.series[series];
    if (!s) return;
    wanted = Math.max(0, Math.min(s.slices.length - 1, k));
    if (loading) return;
    loading = true;
    try {
      // A new study (open) resets `series`: the loop of the old one stops there.
      while (study?.series[series] && (shown.series !== series || shown.slice !== wanted)) await show(series, wanted);
    } finally {
      loading = false;
    }
  }

  async function show(si, k) {
    leave();
    const s = study.series[si];
    const entry = s.slices[k];
    shown = { series: si, slice: k };
    const file = files.get(entry.name);
    let result;
    try {
      const bytes = file ? await file.arrayBuffer() : null;
      result = await app.call('loadStudySlice', { bytes, name: entry.name }, bytes ? [bytes] : []);
    } catch (err) {
      // The previous slice stays on screen, no longer tied to a study slice (nothing is saved
      // under the wrong one); the next move tries again.
      current = null;
      $('slice-index').textContent = `slice ${k + 1} / ${s.slices.length} could not be read`;
      app.showError(`${entry.name} (slice ${k + 1} of ${s.description || 'the series'}): ${err.message ?? err}`);
      return;
    }
    last.set(s.uid, k);
    const id = key(si, k);
    const restore = saved.get(id);
    current = id;
    app.showSlice(result, entry.name, {
      restore,
      study: { series_uid: s.uid, series_description: s.description, slice_index: k, slices: s.slices.length },
    });
    if (!restore) scheduleDetection(id);
  }

  /// Keep the shown slice's discs for when it is shown again: once its detection finished, or
  /// when the user placed discs on it (a slice passed before detection ran is detected anew).
  function leave() {
    if (!current) return;
    const snap = app.snapshot();
    if (detected.has(current) || snap.discs.length) saved.set(current, snap);
  }

  function scheduleDetection(id) {
    clearTimeout(detectTimer);
    detectTimer = setTimeout(async () => {
      if (current !== id || loading) return;
      await app.detect();
      if (current === id) detected.add(id);
    }, DETECT_AFTER_MS);
  }

  const navigable = () => !$('slice-nav').hidden && study?.series[shown.series]?.slices.length > 1;
  const step = (d) => go((loading ? wanted : shown.slice) + d);

  /// The wheel over the slice moves through the series (ctrl or a pinch zooms, as before);
  /// true when it did.
  function onWheel(e) {
    if (!navigable() || e.ctrlKey || e.metaKey) return false;
    e.preventDefault();
    const dy = e.deltaY * (e.deltaMode === 1 ? 33 : e.deltaMode === 2 ? 400 : 1);
    if (Math.abs(dy) >= WHEEL_STEP) {
      wheel = 0;
      step(Math.sign(dy));
    } else {
      wheel += dy;
      if (Math.abs(wheel) >= WHEEL_STEP) {
        step(Math.sign(wheel));
        wheel = 0;
      }
    }
    return true;
  }

  window.addEventListener('keydown', (e) => {
    if (!navigable() || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.target.closest?.('input, select, textarea')) return;
    const n = study.series[shown.series].slices.length;
    const to = { ArrowDown: 1, ArrowRight: 1, PageDown: 1, ArrowUp: -1, ArrowLeft: -1, PageUp: -1 }[e.key];
    if (to) step(to);
    else if (e.key === 'Home') go(0);
    else if (e.key === 'End') go(n - 1);
    else return;
    e.preventDefault();
  });
  $('slice-prev').addEventListener('click', () => step(-1));
  $('slice-next').addEventListener('click', () => step(1));

  /// app.js calls this for every slice it shows: the navigation bar follows the slice (hidden for
  /// a slice opened on its own or a phantom).
  function showing(slice) {
    const st = slice?.study;
    if (!st) current = null;
    $('slice-nav').hidden = !st;
    if (!st) return;
    const spacing = slice.info.spacing_mm;
    $('slice-index').textContent = `slice ${st.slice_index + 1} / ${st.slices}`;
    $('slice-index').dataset.index = st.slice_index;
    $('slice-index').dataset.series = st.series_uid;
    $('slice-series').textContent = [st.series_description || '(no description)',
      spacing ? `pixels ${spacing[1].toFixed(2)} × ${spacing[0].toFixed(2)} mm` : 'no pixel spacing in the file'].join(' · ');
    $('slice-prev').disabled = st.slice_index === 0;
    $('slice-next').disabled = st.slice_index === st.slices - 1;
  }

  /// A drop that is a study (a folder, several files, a zip) is read here: true. A single other
  /// file is the page's (a slice, a model, corners): false. Entries must be taken during the
  /// drop event itself, before any await.
  function takeDrop(dt) {
    const dropped = [...(dt.files ?? [])];
    const entries = [...(dt.items ?? [])].filter((i) => i.kind === 'file').map((i) => i.webkitGetAsEntry?.() ?? null);
    const folder = entries.some((e) => e?.isDirectory);
    if (!folder && dropped.length < 2 && !(dropped.length === 1 && /\.zip$/i.test(dropped[0].name))) return false;
    const list = folder && entries.every(Boolean)
      ? walk(entries)
      : Promise.resolve(dropped.map((file) => ({ file, name: file.name })));
    list.then(open).catch((err) => app.showError(`The dropped study could not be read: ${err.message ?? err}`));
    return true;
  }

  const fromInput = (input) => [...input.files].map((file) => ({ file, name: file.webkitRelativePath || file.name }));
  for (const id of ['study-folder', 'study-files']) {
    $(id).addEventListener('change', (e) => {
      const list = fromInput(e.target);
      e.target.value = '';
      if (list.length) open(list).catch((err) => app.showError(`The study could not be read: ${err.message ?? err}`));
    });
  }

  return { open, takeDrop, onWheel, showing };
}

/// Every file under dropped folders, with its path inside the drop, in name order.
async function walk(entries) {
  const readAll = (reader) => new Promise((resolve, reject) => {
    const all = [];
    const next = () => reader.readEntries((batch) => {
      if (!batch.length) return resolve(all);
      all.push(...batch);
      next();
    }, reject);
    next();
  });
  const fileOf = (entry) => new Promise((resolve, reject) => entry.file(resolve, reject));
  const out = [];
  const stack = [...entries];
  while (stack.length) {
    const e = stack.pop();
    if (e.isDirectory) stack.push(...await readAll(e.createReader()));
    else out.push({ file: await fileOf(e), name: e.fullPath.replace(/^\//, '') });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
