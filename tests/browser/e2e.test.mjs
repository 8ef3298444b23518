// End-to-end tests of the page in Debian's headless Chromium, driven by playwright-core.
// Run by `./build.sh test` after the Rust tests (it needs www/pkg and target/debug/endplate).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdir, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join, resolve, dirname } from 'node:path';
import { root, www, serve, launch } from './harness.mjs';

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
  ({ server, origin } = await serve(www));
  ({ context, work } = await launch({ acceptDownloads: true }));
  context.on('request', (r) => requests.push(r.url()));
  page = context.pages()[0] ?? await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
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

/// Click the four corners of each disc on the canvas, as a user would.
async function clickCorners(discs, size) {
  const box = await page.locator('#view').boundingBox();
  const scale = Math.min(640 / size.width, 640 / size.height);
  const tx = (640 - size.width * scale) / 2;
  const ty = (640 - size.height * scale) / 2;
  for (const corners of discs) {
    for (const [x, y] of corners) {
      await page.mouse.click(box.x + (x * scale + tx) * box.width / 640, box.y + (y * scale + ty) * box.height / 640);
    }
  }
}

async function download(selector) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  const path = join(work, dl.suggestedFilename());
  await dl.saveAs(path);
  return path;
}

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
  await page.setInputFiles('#slice-input', image);
  await page.waitForFunction(() => document.querySelector('#prompt').textContent.includes('L1L2'));
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
  await writeFile(join(dirname(image), 'page.csv'), csv.replaceAll(/^[^,\n]+\.png/gm, (m) => m.split('/').pop()));
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
  const csv = join(work, files.find((f) => f.endsWith('-endplate.csv')));
  const plain = await context.newPage();
  try {
    await plain.goto(origin + '/?wasm=simd');
    await plain.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
    if (!(await page.textContent('#model-name')).startsWith('endplate')) {
      await plain.setInputFiles('#model-input', join(work, 'random.onnx'));
      await plain.waitForFunction(() => document.querySelector('#model-name').textContent !== 'none');
    }
    await plain.setInputFiles('#slice-input', image);
    await plain.waitForFunction(() => document.querySelector('#prompt').textContent.includes('L1L2'));
    await plain.setInputFiles('#import-input', csv);
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
  await page.setInputFiles('#slice-input', image);
  await page.waitForFunction(() => document.querySelector('#prompt').textContent.includes('L1L2'));
  const png = await readFile(image);
  await clickCorners([[1, 2, 3, 4].map((k) => [Number(row[`x${k}`]), Number(row[`y${k}`])])], { width: png.readUInt32BE(16), height: png.readUInt32BE(20) });
  await page.click('#classify-btn');
  await page.waitForSelector('#results li:nth-child(1) .class[data-label]');
  await page.screenshot({ path: join(artifacts, 'real-slice.png') });
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
  await page.click('#phantom-btn');
  await page.waitForFunction(() => document.querySelector('#prompt').textContent.includes('L1L2'));
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
