// End-to-end tests of the page in Debian's headless Chromium, driven by playwright-core.
// Run by `./build.sh test` after the Rust tests (it needs www/pkg and target/debug/endplate).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdir, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join, resolve, dirname } from 'node:path';
import { root, www, openApp, openSlice, downloadFrom } from './harness.mjs';

const bin = join(root, 'target/debug/endplate');
const artifacts = join(root, 'target/browser');
const spider = resolve(root, '../shared/data/spider-t2-sample');

let server, origin, context, page, work;
const requests = [];
const consoleErrors = [];

before(async () => {
  assert.ok(existsSync(join(www, 'pkg/relaxed/endplate_bg.wasm')), 'build the wasm package first: ./build.sh wasm');
  assert.ok(existsSync(bin), 'build the native binary first: cargo build');
  await mkdir(artifacts, { recursive: true });
  ({ server, origin, context, page, work } = await openApp({
    consoleErrors,
    onContext: (c) => c.on('request', (r) => requests.push(r.url())),
  }));
  const t0 = Date.now();
  await page.goto(origin + '/');
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
  console.log(`page ready in ${Date.now() - t0} ms`);
});

after(async () => {
  await context?.close();
  server?.close();
});

/// A model for the page: the bundled one when it exists, otherwise an untrained one from our
/// writer (the page then shows its "untrained" warning).
async function ensureModel() {
  const name = await page.textContent('#model-name');
  if (name !== 'none') return join(root, 'models/endplate-default.onnx');
  const model = join(work, 'random.onnx');
  execFileSync('cargo', ['run', '--quiet', '--example', 'random_model', '--', model, '7'], { cwd: root });
  await page.setInputFiles('#model-input', model);
  await page.waitForFunction(() => document.querySelector('#model-name').textContent !== 'none');
  await page.evaluate(() => { document.querySelector('#error').hidden = true; });
  return model;
}

/// Open a slice and drop the discs the detector proposed, to place corners by hand.
async function openForHand(p, file) {
  await openSlice(p, file);
  await p.click('#clear-btn');
  await p.waitForFunction(() => document.querySelector('#prompt').textContent.includes('L1L2'));
  // The detection's message goes with its discs (a page without a detector keeps saying so).
  if (await p.getAttribute('#detection', 'data-state') !== 'off') {
    assert.match(await p.textContent('#detection'), /^Discs cleared: place the corners by hand/);
  }
}

/// Click the four corners of each disc on the canvas, as a user would.
async function clickCorners(discs, size, p = page) {
  const box = await p.locator('#view').boundingBox();
  const scale = Math.min(640 / size.width, 640 / size.height);
  const tx = (640 - size.width * scale) / 2;
  const ty = (640 - size.height * scale) / 2;
  for (const corners of discs) {
    for (const [x, y] of corners) {
      await p.mouse.click(box.x + (x * scale + tx) * box.width / 640, box.y + (y * scale + ty) * box.height / 640);
    }
  }
}

const download = (selector) => downloadFrom(page, selector, work);

function readManifest(text) {
  const [header, ...lines] = text.trim().split('\n');
  const cols = header.split(',');
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i], v])));
}

test('a phantom classified in the page matches endplate classify --json', async () => {
  const model = await ensureModel();
  const data = join(work, 'phantom');
  execFileSync(bin, ['synth', '--out', data, '--subjects', '1', '--seed', '42', '--bits', '16']);
  const rows = readManifest(await readFile(join(data, 'manifest.csv'), 'utf8'));
  const image = join(data, rows[0].image);
  await openForHand(page, image);
  const size = await page.evaluate(() => ({ width: document.querySelector('#view').width }));
  // The slice size, from the PNG header.
  const png = await readFile(image);
  const dims = { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
  assert.ok(size.width > 0);
  const discs = rows.map((r) => [1, 2, 3, 4].map((k) => [Number(r[`x${k}`]), Number(r[`y${k}`])]));
  await clickCorners(discs, dims);
  await page.waitForSelector('#results li:nth-child(5) canvas');
  await page.click('#classify-btn');
  await page.waitForSelector('#results li:nth-child(5) .class[data-label]');
  const timing = await page.textContent('#timing');
  assert.match(timing, /5 discs classified in \d+ ms/);
  console.log(timing);

  // Export the page's corners and results, then run the native binary on exactly those corners.
  const csvPath = await download('#export-csv');
  const jsonPath = await download('#export-json');
  const exported = JSON.parse(await readFile(jsonPath, 'utf8'));
  assert.equal(exported.results.length, 5);
  const csv = await readFile(csvPath, 'utf8');
  // The native run gets the page's corners at full precision (the JSON export's): the CSV rounds
  // them to 0.01 px, which moves a steep disc's probabilities by about 1e-4 on the bundled model.
  const header = 'image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4';
  const lines = exported.results.map((r) => [image.split('/').pop(), 'page', r.level, '', ...r.corners.flat()].join(','));
  await writeFile(join(dirname(image), 'page.csv'), [header, ...lines].join('\n') + '\n');
  const native = JSON.parse(execFileSync(bin, ['classify', '--manifest', join(dirname(image), 'page.csv'), '--model', model, '--json', '--threads', '1']).toString());
  for (let i = 0; i < 5; i++) {
    const [p, n] = [exported.results[i], native.results[i]];
    assert.equal(p.level, n.level);
    assert.equal(p.label, n.label, `${p.level}: page ${p.label}, native ${n.label}`);
    for (const k of ['normal', 'wavy', 'notched', 'schmorl']) {
      assert.ok(Math.abs(p.probabilities[k] - n.probabilities[k]) < 1e-4, `${p.level} ${k}: ${p.probabilities[k]} vs ${n.probabilities[k]}`);
    }
    // The clicked corners land within one screen pixel of the manifest's.
    const px = 1 / Math.min(640 / dims.width, 640 / dims.height);
    p.corners.forEach(([x, y], k) => assert.ok(Math.hypot(x - discs[i][k][0], y - discs[i][k][1]) <= 1.5 * px));
  }
  // On the bundled (trained) model the page gets the phantom's lesions right.
  if (model.endsWith('endplate-default.onnx')) {
    const right = exported.results.filter((r, i) => r.label === rows[i].label).length;
    console.log(`bundled model: ${right} of 5 phantom discs right`);
    assert.ok(right >= 4, `only ${right} of 5 discs right: ${exported.results.map((r) => r.label)} vs ${rows.map((r) => r.label)}`);
  }
  // The exported CSV reads back as a manifest with prediction columns.
  assert.match(csv.split('\n')[0], /^image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4,predicted,p_normal/);
  await page.screenshot({ path: join(artifacts, 'phantom.png') });
});

test('an evidence map is computed on demand in a worker and drawn over the preview and the slice', async () => {
  // The discs the previous test classified are still on the page.
  await page.waitForSelector('#results li:nth-child(1) .evidence-btn');
  const before = await page.evaluate(() => document.querySelector('#view').toDataURL());
  await page.click('#results li:nth-child(1) .evidence-btn');
  await page.waitForSelector('#results li:nth-child(1) .evidence-legend', { timeout: 60000 });
  const legend = await page.textContent('#results li:nth-child(1) .evidence-legend');
  assert.match(legend, /32-pixel gray patch \(every 16 px of the 128-px ROI, 49 runs\) lowers P\(/);
  assert.match(legend, /red by \d+ points/);
  console.log(legend);
  // The preview carries the overlay: some of its pixels are no longer gray.
  const coloured = await page.evaluate(() => {
    const c = document.querySelector('#results li:nth-child(1) canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - d[i + 2]) > 20) n++;
    return n;
  });
  assert.ok(coloured > 0, 'the ROI preview shows the map');
  assert.notEqual(await page.evaluate(() => document.querySelector('#view').toDataURL()), before, 'the slice shows the map');
  await page.screenshot({ path: join(artifacts, 'evidence.png') });
  await page.click('#results li:nth-child(1) .evidence-btn');
  await page.waitForFunction(() => !document.querySelector('#results li:nth-child(1) .evidence-legend'));
  assert.deepEqual(consoleErrors, []);
});

test('importing an exported CSV restores the corners', async () => {
  const files = await readdir(work);
  const csv = join(work, files.find((f) => f.endsWith('-endplate.csv')));
  await page.click('#clear-btn');
  assert.equal(await page.locator('#results li').count(), 0);
  await page.setInputFiles('#import-input', csv);
  await page.waitForSelector('#results li:nth-child(5) canvas');
  assert.equal(await page.locator('#results li').count(), 5);
});

test('the plain-SIMD build (for browsers without relaxed SIMD) gives the same numbers', async () => {
  const files = await readdir(work);
  const first = JSON.parse(await readFile(join(work, files.find((f) => f.endsWith('-endplate.json'))), 'utf8'));
  const data = join(work, 'phantom');
  const image = join(data, 'images', (await readdir(join(data, 'images'))).find((f) => f.endsWith('.png')));
  // The JSON export keeps the corners at full precision (the CSV rounds them to 0.01 px).
  const corners = join(work, files.find((f) => f.endsWith('-endplate.json')));
  const plain = await context.newPage();
  try {
    await plain.goto(origin + '/?wasm=simd');
    await plain.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
    if (!(await page.textContent('#model-name')).startsWith('endplate')) {
      await plain.setInputFiles('#model-input', join(work, 'random.onnx'));
      await plain.waitForFunction(() => document.querySelector('#model-name').textContent !== 'none');
    }
    await openSlice(plain, image);
    await plain.setInputFiles('#import-input', corners);
    await plain.waitForSelector('#results li:nth-child(5) canvas');
    await plain.click('#classify-btn');
    await plain.waitForSelector('#results li:nth-child(5) .class[data-label]');
    const [dl] = await Promise.all([plain.waitForEvent('download'), plain.click('#export-json')]);
    const second = JSON.parse(await readFile(await dl.path(), 'utf8'));
    for (let i = 0; i < 5; i++) {
      const [a, b] = [first.results[i], second.results[i]];
      assert.equal(a.label, b.label, a.level);
      for (const k of Object.keys(a.probabilities)) {
        assert.ok(Math.abs(a.probabilities[k] - b.probabilities[k]) < 1e-4, `${a.level} ${k}: ${a.probabilities[k]} vs ${b.probabilities[k]}`);
      }
    }
  } finally {
    await plain.close();
  }
});

test('a real slice from the shared folder loads and classifies', async (t) => {
  if (!existsSync(spider)) return t.skip('shared/data/spider-t2-sample is absent');
  const rows = readManifest(await readFile(join(root, 'tests/data/spider-manifest.csv'), 'utf8'));
  const row = rows.find((r) => r.image.endsWith('spider_40_t2.png'));
  const image = resolve(root, 'tests/data', row.image);
  await openForHand(page, image);
  const png = await readFile(image);
  await clickCorners([[1, 2, 3, 4].map((k) => [Number(row[`x${k}`]), Number(row[`y${k}`])])], { width: png.readUInt32BE(16), height: png.readUInt32BE(20) });
  await page.click('#classify-btn');
  await page.waitForSelector('#results li:nth-child(1) .class[data-label]');
  await page.screenshot({ path: join(artifacts, 'real-slice.png') });
});

/// Classify the proposed discs without a click on the slice and check the page's corners and
/// probabilities against `endplate classify --image` (same model and detector files, run
/// natively). Returns the page's exported results.
async function classifiedAsTheCliClassifies(image, model, detector, proposed, screenshot) {
  // No corner clicked: Classify straight away.
  assert.equal(await page.isDisabled('#classify-btn'), false);
  await page.click('#classify-btn');
  await page.waitForSelector(`#results li:nth-child(${proposed}) .class[data-label]`);
  const exported = JSON.parse(await readFile(await download('#export-json'), 'utf8'));
  await page.screenshot({ path: join(artifacts, screenshot) });

  const native = JSON.parse(execFileSync(bin, ['classify', '--image', image, '--model', model, '--detector', detector, '--json', '--threads', '1'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString());
  // The CLI lists discs top to bottom, the page by level: the same discs either way.
  const levels = (r) => r.results.map((x) => x.level).sort();
  assert.deepEqual(levels(exported), levels(native), 'the same discs, the same levels');
  let [cornerDiff, probDiff] = [0, 0];
  for (const p of exported.results) {
    const n = native.results.find((x) => x.level === p.level);
    // The same detector file, run by tract in wasm and natively: the same corners.
    p.corners.forEach(([x, y], k) => {
      const d = Math.hypot(x - n.corners[k][0], y - n.corners[k][1]);
      cornerDiff = Math.max(cornerDiff, d);
      assert.ok(d < 1e-2, `${p.level} corner ${k + 1}: page (${x}, ${y}), native ${n.corners[k]}`);
    });
    assert.equal(p.label, n.label, `${p.level}: page ${p.label}, native ${n.label}`);
    for (const k of ['normal', 'wavy', 'notched', 'schmorl']) {
      probDiff = Math.max(probDiff, Math.abs(p.probabilities[k] - n.probabilities[k]));
      assert.ok(Math.abs(p.probabilities[k] - n.probabilities[k]) < 1e-4, `${p.level} ${k}: ${p.probabilities[k]} vs ${n.probabilities[k]}`);
    }
  }
  console.log(`page vs endplate classify --image: ${exported.results.map((r) => `${r.level} ${r.label}`).join(', ')}; largest corner difference ${cornerDiff.toExponential(1)} px, probability ${probDiff.toExponential(1)}`);
  return exported;
}

test('a real slice opened in the page gets its discs proposed and classified without a click, as endplate classify --image does', async (t) => {
  if (!existsSync(spider)) return t.skip('shared/data/spider-t2-sample is absent: no real slice to detect on');
  const model = await ensureModel();
  // The page's detector is the bundled one that the CLI uses by default; name it to be sure.
  const detector = join(www, 'models/endplate-detector.onnx');
  if (!existsSync(detector)) return t.skip('www/models/endplate-detector.onnx is absent (./build.sh wasm copies models/*.onnx)');
  const image = join(spider, 'spider_20_t2.png'); // 7 discs: 5 lumbar, 2 above L1L2
  await openSlice(page, image);
  const status = await page.textContent('#detection');
  console.log(status);
  assert.match(status, /^\d+ discs? found in \d+ ms/);
  const proposed = await page.$$eval('#results li', (lis) => lis.map((li) => li.dataset.level));
  assert.ok(proposed.length >= 3, `only ${proposed.length} discs proposed: ${status}`);
  for (const l of proposed) assert.match(l, /^L[1-5](L[2-5]|S1)$/);
  await classifiedAsTheCliClassifies(image, model, detector, proposed.length, 'real-slice-detected.png');

  // A proposed disc can be removed, and detection run again brings it back.
  await page.click('#results li:nth-child(1) .remove');
  assert.equal(await page.locator('#results li').count(), proposed.length - 1);
  assert.match(await page.textContent('#prompt'), new RegExp(`corners of ${proposed[0]}`));
  const runs = await page.evaluate(() => Number(document.querySelector('#detection').dataset.runs));
  await page.click('#detect-btn');
  await page.waitForFunction((n) => Number(document.querySelector('#detection').dataset.runs) > n, runs);
  assert.deepEqual(await page.$$eval('#results li', (lis) => lis.map((li) => li.dataset.level)), proposed);
});

test('a tall real slice whose discs lie far apart gets all five lumbar levels proposed, as endplate classify finds them', async (t) => {
  if (!existsSync(spider)) return t.skip('shared/data/spider-t2-sample is absent: no real slice to detect on');
  const model = await ensureModel();
  const detector = join(www, 'models/endplate-detector.onnx');
  if (!existsSync(detector)) return t.skip('www/models/endplate-detector.onnx is absent (./build.sh wasm copies models/*.onnx)');
  // 384 x 778 px, its discs up to 1.7 widths apart: before the chain's reach followed the
  // slice's spacing (docs/detection-experiments.md, "The chain's reach follows the slice") only
  // L5S1 was proposed.
  const image = join(spider, 'spider_181_t2.png');
  await openSlice(page, image);
  console.log(await page.textContent('#detection'));
  const proposed = await page.$$eval('#results li', (lis) => lis.map((li) => li.dataset.level));
  assert.deepEqual([...proposed].sort(), ['L1L2', 'L2L3', 'L3L4', 'L4L5', 'L5S1']);
  await classifiedAsTheCliClassifies(image, model, detector, proposed.length, 'tall-slice-detected.png');
});

test('a real slice stored upside down gets its levels from the sacrum at the top and is classified as endplate classify turns it', async (t) => {
  const full = resolve(root, '../shared/data/spider-t2');
  const image = join(full, 'spider_35_t2_SPACE.png'); // stored with the sacrum at the top
  if (!existsSync(image)) return t.skip('shared/data/spider-t2 is absent: no slice stored upside down');
  const model = await ensureModel();
  const detector = join(www, 'models/endplate-detector.onnx');
  if (!existsSync(detector)) return t.skip('www/models/endplate-detector.onnx is absent (./build.sh wasm copies models/*.onnx)');
  await openSlice(page, image);
  const status = await page.textContent('#detection');
  console.log(status);
  assert.match(status, /^This slice is stored upside down \(sacrum at the top\)/);
  const proposed = await page.$$eval('#results li', (lis) => lis.map((li) => li.dataset.level));
  assert.deepEqual([...proposed].sort(), ['L1L2', 'L2L3', 'L3L4', 'L4L5', 'L5S1']);
  const exported = await classifiedAsTheCliClassifies(image, model, detector, proposed.length, 'upside-down-detected.png');
  // Shown as stored: L5S1 lies highest in the image, L1L2 lowest.
  const y = (level) => exported.results.find((r) => r.level === level).corners.reduce((a, [, v]) => a + v / 4, 0);
  assert.ok(y('L5S1') < y('L3L4') && y('L3L4') < y('L1L2'), `L5S1 at ${y('L5S1')}, L1L2 at ${y('L1L2')}`);
});

test('a missing or broken detector leaves manual placement working, with a message', async () => {
  const model = await ensureModel();
  const data = join(work, 'phantom-manual');
  execFileSync(bin, ['synth', '--out', data, '--subjects', '1', '--seed', '5', '--bits', '8']);
  const rows = readManifest(await readFile(join(data, 'manifest.csv'), 'utf8'));
  const image = join(data, rows[0].image);
  const png = await readFile(image);
  const dims = { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
  for (const [why, body, message] of [
    ['missing', { status: 404, body: '' }, /Automatic disc detection is off: the detector models\/endplate-detector\.onnx is missing \(HTTP 404\)/],
    ['broken', { status: 200, body: Buffer.from('not an onnx file, just text') }, /Automatic disc detection is off: the detector file could not be loaded: .*not an ONNX file.*\. Place the corners by hand/],
  ]) {
    const p = await context.newPage();
    try {
      await p.route('**/endplate-detector.onnx', (r) => r.fulfill(body));
      await p.goto(origin + '/');
      await p.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
      await p.waitForSelector('#detection[data-state="off"]', { timeout: 60000 });
      const text = await p.textContent('#detection');
      console.log(`${why} detector: ${text}`);
      assert.match(text, message);
      assert.ok(await p.isDisabled('#detect-btn'));
      if (!(await p.textContent('#model-name')).startsWith('endplate')) {
        await p.setInputFiles('#model-input', model);
        await p.waitForFunction(() => document.querySelector('#model-name').textContent !== 'none');
      }
      await openSlice(p, image);
      assert.equal(await p.locator('#results li').count(), 0);
      assert.match(await p.textContent('#prompt'), /corners of L1L2/);
      const l1l2 = [1, 2, 3, 4].map((k) => [Number(rows[0][`x${k}`]), Number(rows[0][`y${k}`])]);
      await clickCorners([l1l2], dims, p);
      await p.waitForSelector('#results li:nth-child(1) canvas');
      await p.click('#classify-btn');
      await p.waitForSelector('#results li:nth-child(1) .class[data-label]');
      assert.equal(await p.locator('#results li').count(), 1);
      if (why === 'broken') {
        // A detector file given through "Load model" becomes the detector; the classifier stays.
        const name = await p.textContent('#model-name');
        await p.setInputFiles('#model-input', join(root, 'models/endplate-detector.onnx'));
        await p.waitForSelector('#detection[data-state="ready"]');
        assert.equal(await p.textContent('#model-name'), name);
        assert.equal(await p.isDisabled('#detect-btn'), false);
      }
    } finally {
      await p.close();
    }
  }
});

test('bad files give visible errors and keep the current model', async () => {
  const before = await page.textContent('#model-name');
  const junk = join(work, 'notes.png');
  await writeFile(junk, 'patient notes, not an image\n');
  await page.setInputFiles('#slice-input', junk);
  await page.waitForSelector('#error:not([hidden])');
  assert.match(await page.textContent('#error'), /not a PNG, JPEG or DICOM/);
  const badModel = join(work, 'bad.onnx');
  await writeFile(badModel, Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 2654435761) >>> 24)));
  await page.setInputFiles('#model-input', badModel);
  await page.waitForFunction(() => document.querySelector('#error').textContent.includes('model'));
  assert.match(await page.textContent('#error'), /current model stays/);
  assert.equal(await page.textContent('#model-name'), before);
});

test('a page whose wasm is missing says how to build it', async () => {
  const broken = await context.newPage();
  try {
    await broken.route('**/endplate_bg.wasm', (r) => r.fulfill({ status: 404, body: '' }));
    await broken.goto(origin + '/');
    await broken.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
    assert.match(await broken.textContent('#error'), /endplate_bg\.wasm is missing \(HTTP 404\); build it with \.\/build\.sh wasm/);
    assert.equal(await broken.textContent('#model-name'), 'none');
  } finally {
    await broken.close();
  }
});

test('the page works offline and never leaves its origin', async () => {
  await context.setOffline(true);
  const runs = await page.evaluate(() => Number(document.querySelector('#detection').dataset.runs));
  await page.click('#phantom-btn');
  await page.waitForFunction((n) => Number(document.querySelector('#detection').dataset.runs) > n, runs);
  await page.click('#truth-btn');
  await page.waitForSelector('#results li:nth-child(5) canvas');
  await page.click('#classify-btn');
  await page.waitForSelector('#results li:nth-child(5) .truth');
  await page.screenshot({ path: join(artifacts, 'teaching-demo.png') });
  await context.setOffline(false);
  const foreign = requests.filter((u) => !u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:'));
  assert.deepEqual(foreign, []);
  assert.deepEqual(consoleErrors, []);
});

test('hostile files each give a message, the worker survives, and the next good file opens', async () => {
  // A real JPEG and PNG drawn by the browser, then cut, and a DICOM preamble over junk.
  const encoded = await page.evaluate(async () => {
    const c = new OffscreenCanvas(96, 80);
    const g = c.getContext('2d');
    for (let x = 0; x < 96; x += 8) { g.fillStyle = `rgb(${x * 2},${x * 2},${x * 2})`; g.fillRect(x, 0, 8, 80); }
    const b64 = async (type) => {
      const bytes = new Uint8Array(await (await c.convertToBlob({ type, quality: 0.9 })).arrayBuffer());
      return btoa(String.fromCharCode(...bytes));
    };
    return { jpeg: await b64('image/jpeg'), png: await b64('image/png') };
  });
  const jpeg = Buffer.from(encoded.jpeg, 'base64');
  const png = Buffer.from(encoded.png, 'base64');
  const dicomJunk = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from(Array.from({ length: 400 }, (_, i) => (i * 97) & 255))]);
  const hostile = [
    ['cut.jpg', jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), /truncated/],
    ['cut.png', png.subarray(0, Math.floor(png.length / 2)), /cut\.png/],
    ['junk.dcm', dicomJunk, /junk\.dcm/],
  ];
  for (const [name, bytes, message] of hostile) {
    const path = join(work, name);
    await writeFile(path, bytes);
    await page.evaluate(() => { document.querySelector('#error').hidden = true; document.querySelector('#error').textContent = ''; });
    await page.setInputFiles('#slice-input', path);
    await page.waitForSelector('#error:not([hidden])');
    const text = await page.textContent('#error');
    assert.match(text, message, `${name}: ${text}`);
    assert.doesNotMatch(text, /unreachable|RuntimeError/, `${name}: ${text}`);
  }
  const good = join(work, 'good.jpg');
  await writeFile(good, jpeg);
  await page.evaluate(() => { document.querySelector('#error').hidden = true; });
  await openSlice(page, good);
  assert.equal(await page.isHidden('#error'), true, await page.textContent('#error'));
});
