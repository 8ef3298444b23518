// Adapting the model to the user's own discs, all in this browser: the user labels placed discs
// (a select under each disc), slice after slice; each label stores the disc's pooled features
// (computed at once by the worker, since the slice will be gone later). "Adapt" sends them to
// the worker, which runs the library's `adapt` (src/adapt/mod.rs, the same function as
// `endplate adapt`): whole slices held out, the last layer refitted, both layers checked on the
// held-out discs, a new model file. The page then uses the adapted model, can switch back to the
// original, shows the held-out comparison, and saves the adapted file.
//
// app.js calls four hooks: `labelControl(d)` (the select for a disc), `discMoved(d)` (its corners
// changed), `discRemoved(d)` (× on its card) and `modelLoaded(name)` (a model became active).

const LABELS = [['normal', 'Normal'], ['wavy', 'Wavy/irregular'], ['notched', 'Notched'],
  ['schmorl', "Schmorl's node"], ['lesion', 'Lesion (type unknown)']];
const MIN_PER_LABEL = 8; // src/model/adapt.rs MIN_PER_LABEL; the library refuses below it anyway
const $ = (id) => document.getElementById(id);

/// `engine`: www/engine.js; `loadModel(bytes, name, source)`: app.js's; `reclassify()`: classify
/// the current slice's discs again (after a model switch); `subject()`: the current slice's name,
/// which the held-out split keeps whole.
export function createAdaptation({ engine, loadModel, reclassify, subject }) {
  const labelled = new Map(); // `${subject}|${level}` -> {subject, name, label, features}
  let base = null; // {bytes, name}: the model the features came from
  let adapted = null; // {bytes, name, report}
  let original = null; // {bytes, name, source}
  let switching = false;

  const key = (d) => `${subject()}|${d.level}`;
  const status = (text, state) => {
    $('adapt-status').textContent = text;
    if (state) $('adapt').dataset.state = state;
  };

  function counts() {
    const c = {};
    for (const e of labelled.values()) c[e.label] = (c[e.label] ?? 0) + 1;
    const slices = new Set([...labelled.values()].map((e) => e.subject)).size;
    $('adapt-counts').textContent = labelled.size
      ? `${labelled.size} labelled disc${labelled.size === 1 ? '' : 's'} on ${slices} slice${slices === 1 ? '' : 's'}: `
        + Object.entries(c).map(([k, n]) => `${k} ${n}${n < MIN_PER_LABEL ? ` (needs ${MIN_PER_LABEL})` : ''}`).join(', ')
      : '';
    $('adapt').dataset.labelled = labelled.size;
    $('adapt-btn').disabled = labelled.size === 0;
    $('adapt-clear').disabled = labelled.size === 0;
  }

  async function setLabel(d, label, select) {
    const k = key(d);
    if (!label) {
      labelled.delete(k);
      counts();
      return;
    }
    select.disabled = true;
    try {
      const features = await engine.call('features', { corners: d.corners.flat() });
      base ??= engine.modelFile();
      labelled.set(k, { subject: subject(), name: d.level, label, features: Array.from(features) });
      status(`${d.level} labelled ${label}.`, 'labelling');
    } catch (err) {
      labelled.delete(k);
      select.value = '';
      status(`${d.level} could not be labelled: ${err.message}`, 'failed');
    }
    select.disabled = false;
    counts();
  }

  async function adapt() {
    $('adapt-btn').disabled = true;
    status(`Adapting to ${labelled.size} discs…`, 'running');
    const t0 = performance.now();
    try {
      const discs = [...labelled.values()];
      const features = new Float32Array(discs.flatMap((e) => e.features));
      const r = await engine.call('adapt', {
        base: base.bytes.slice(0), name: base.name, features, date: new Date().toISOString().slice(0, 10),
        discs: discs.map(({ subject: s, name, label }) => ({ subject: s, name, label })),
      }, [features.buffer]);
      const fitted = performance.now();
      original ??= { ...base, source: $('model-name').dataset.source };
      // An ArrayBuffer of its own, as loadModel transfers it to the worker.
      adapted = { bytes: r.bytes.slice().buffer, name: base.name.replace(/(\.onnx)?$/, '-adapted.onnx'), report: r.report };
      await use('adapted');
      const ms = performance.now() - t0;
      $('adapt').dataset.ms = ms.toFixed(0);
      status(`Adapted in ${(ms / 1000).toFixed(1)} s (fit and new model file ${(r.milliseconds / 1000).toFixed(1)} s in the worker, the rest loading the adapted model; ${((fitted - t0 - r.milliseconds) / 1000).toFixed(1)} s passing the files). ${r.report.summary}`, 'adapted');
      showReport(r.report);
    } catch (err) {
      status(`Not adapted: ${err.message}`, 'refused');
    }
    $('adapt-btn').disabled = labelled.size === 0;
  }

  /// Make the adapted or the original model active, and classify the slice's discs again.
  async function use(which) {
    const m = which === 'adapted' ? adapted : original;
    if (!m) return;
    switching = true;
    try {
      await loadModel(m.bytes.slice(0), m.name, which === 'adapted' ? 'file' : (m.source === 'bundled' ? 'bundled' : 'file'));
    } finally {
      switching = false;
    }
    $('adapt-use-adapted').checked = which === 'adapted';
    $('adapt-use-original').checked = which !== 'adapted';
    await reclassify();
    $('adapt').dataset.using = which; // once the discs show this model's results
  }

  const pct = (v) => `${(100 * v).toFixed(0)}%`;
  const argmax = (p) => p.indexOf(Math.max(...p));
  function right(label, p) {
    if (label === 'lesion') return 1 - p[0] >= 0.5;
    if (label === 'normal') return 1 - p[0] < 0.5;
    return LABELS[argmax(p)][0] === label;
  }

  /// The held-out discs under both models: P(lesion), the class, right or wrong by the label.
  function showReport(report) {
    const rows = report.discs.map((d) => {
      const cell = (p) => `<td class="${right(d.label, p) ? 'right' : 'wrong'}">${pct(1 - p[0])} · ${LABELS[argmax(p)][1]}</td>`;
      return `<tr><td>${d.subject}</td><td>${d.name}</td><td>${d.label}</td>${cell(d.before)}${cell(d.after)}</tr>`;
    });
    $('adapt-table').innerHTML = '<thead><tr><th>Slice</th><th>Disc</th><th>Your label</th><th>Original: P(lesion) · class</th><th>Adapted</th></tr></thead>'
      + `<tbody>${rows.join('')}</tbody>`;
    $('adapt-report').hidden = false;
  }

  function save() {
    if (!adapted) return;
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([adapted.bytes], { type: 'application/octet-stream' }));
    a.download = adapted.name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  $('adapt-btn').addEventListener('click', adapt);
  $('adapt-save').addEventListener('click', save);
  $('adapt-use-adapted').addEventListener('change', () => use('adapted'));
  $('adapt-use-original').addEventListener('change', () => use('original'));
  $('adapt-clear').addEventListener('click', () => {
    labelled.clear();
    base = null;
    counts();
    status('Labels forgotten.', 'idle');
    document.querySelectorAll('.disc-label select').forEach((s) => { s.value = ''; });
  });
  counts();

  return {
    /// The label select for one disc (a fresh element each time the results are drawn).
    labelControl(d) {
      const box = document.createElement('label');
      box.className = 'disc-label';
      box.textContent = 'Your label: ';
      const select = document.createElement('select');
      select.setAttribute('aria-label', `Your label for ${d.level}`);
      select.append(new Option('—', ''), ...LABELS.map(([id, name]) => new Option(name, id)));
      select.value = labelled.get(key(d))?.label ?? '';
      select.addEventListener('change', () => setLabel(d, select.value, select));
      box.append(select);
      return box;
    },

    /// A disc's corners moved: its stored features no longer describe it.
    async discMoved(d) {
      const e = labelled.get(key(d));
      if (e) await setLabel(d, e.label, document.createElement('select'));
    },

    /// A disc was removed: its label goes with it, so Adapt never learns from a disc the user
    /// took back.
    discRemoved(d) {
      if (labelled.delete(key(d))) counts();
    },

    /// A model became active. The adaptation's own switches keep the labels (same backbone);
    /// any other model has other features, so the labels made with the old one go.
    modelLoaded() {
      if (switching) return;
      const had = labelled.size;
      labelled.clear();
      base = adapted = original = null;
      $('adapt-report').hidden = true;
      counts();
      if (had) status(`Another model is active, so the ${had} labels made with the previous one were forgotten (their features came from its network).`, 'idle');
    },
  };
}
