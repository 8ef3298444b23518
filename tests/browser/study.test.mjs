// A whole study in the page: a folder (picked with the folder input), a zip (dropped) and loose
// files, each read by the wasm library in the worker; the series list with the sagittal T2
// series proposed, its mid-sagittal slice shown, its discs detected and classified; wheel and
// arrow keys through the slices, every slice keeping its own discs; the pixel spacing as a scale
// bar and in the exports. The study is written by examples/write_study.rs (phantom spines in
// the sagittal T2 slices, so the detector finds discs); nothing binary is committed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, mkdir, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { root, www, openApp } from './harness.mjs';

const writer = join(root, 'target/debug/examples/write_study');
const artifacts = join(root, 'target/browser');
const T2_UID = '1.2.826.0.1.3680043.10.1';

let server, origin, context, page, work, written;
const consoleErrors = [];

before(async () => {
  assert.ok(existsSync(join(www, 'pkg/relaxed/endplate_bg.wasm')), 'build the wasm package first: ./build.sh wasm');
  assert.ok(existsSync(writer), 'build the study writer first: cargo build --all-targets --features train');
  assert.ok(existsSync(join(www, 'models/endplate-detector.onnx')), 'www/models/ lacks the detector: ./build.sh wasm copies models/*.onnx');
  await mkdir(artifacts, { recursive: true });
  ({ server, origin, context, page, work } = await openApp({ consoleErrors }));
  written = JSON.parse(execFileSync(writer, [join(work, 'study'), '--zip', join(work, 'study.zip')]).toString());
  await page.goto(origin + '/');
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
  await page.waitForSelector('#detection[data-state="ready"]', { timeout: 60000 });
});

after(async () => {
  await context?.close();
  server?.close();
});

const runs = (p = page) => p.evaluate(() => Number(document.querySelector('#detection').dataset.runs));
const waitRuns = (n, p = page) => p.waitForFunction((k) => Number(document.querySelector('#detection').dataset.runs) > k, n, { timeout: 60000 })
  .catch(async (err) => { throw new Error(`no detection after run ${n}: ${await p.textContent('#detection')} (runs ${await runs(p)}, ${await p.textContent('#slice-index')}); ${err.message}`); });
const sliceIndex = () => page.evaluate(() => Number(document.querySelector('#slice-index').dataset.index));
const waitSlice = (k) => page.waitForFunction((i) => document.querySelector('#slice-index')?.dataset.index === String(i) && !document.querySelector('#slice-nav').hidden, k);
const levels = () => page.$$eval('#results li', (lis) => lis.map((li) => li.dataset.level));
const labels = () => page.$$eval('#results li .class[data-label]', (els) => els.map((e) => e.dataset.label));

async function download(selector) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  return readFile(await dl.path(), 'utf8');
}

/// The series list as the page shows it.
const seriesList = () => page.$$eval('#series-list li', (lis) => lis.map((li) => ({
  name: li.querySelector('.series-name').textContent,
  meta: li.querySelector('.series-meta').textContent,
  plane: li.dataset.plane,
  slices: Number(li.dataset.slices),
  proposed: li.dataset.proposed === 'true',
  selected: li.classList.contains('selected'),
})));

test('a study folder: the sagittal T2 series proposed, its mid slice detected and classified, slices navigated with their own discs', async () => {
  const before = await runs();
  await page.setInputFiles('#study-folder', join(work, 'study'));
  await page.waitForSelector('#series-list li:nth-child(3)');
  const list = await seriesList();
  assert.deepEqual(list.map((s) => [s.name, s.plane, s.slices]), [
    ['SAG T1 TSE', 'sagittal', 3], ['SAG T2 TSE', 'sagittal', 5], ['AX T2 L4-S1', 'axial', 4]]);
  assert.deepEqual(list.map((s) => s.proposed), [false, true, false]);
  assert.match(list[1].meta, /sagittal · 5 slices · series 4 · proposed: sagittal T2/);
  assert.equal(await page.textContent('#study-skipped-count'), '1 file skipped');
  assert.match(await page.textContent('#study-skipped-list'), /study\/notes\.txt: not a DICOM file/);

  // The proposed series is selected on its mid-sagittal slice, and the detector ran on it.
  await waitSlice(written.mid);
  assert.equal((await seriesList())[1].selected, true);
  assert.equal(await page.textContent('#slice-index'), `slice ${written.mid + 1} / 5`);
  await waitRuns(before);
  const status = await page.textContent('#detection');
  console.log(`mid slice: ${status}`);
  const found = await levels();
  assert.ok(found.length >= 3, `only ${found.length} discs detected: ${status}`);
  assert.equal(await page.isDisabled('#classify-btn'), false);
  await page.click('#classify-btn');
  await page.waitForSelector(`#results li:nth-child(${found.length}) .class[data-label]`, { timeout: 60000 });
  const classified = await labels();
  assert.equal(classified.length, found.length);
  const lesion = await page.$$eval('#results .bar.lesion > span:last-child', (s) => s.map((e) => e.textContent));
  assert.equal(lesion.length, found.length);
  for (const p of lesion) assert.match(p, /^\d+\.\d%$/);

  // The pixel spacing: in the navigation bar, as a scale bar, and in both exports.
  const sp = written.spacing_mm;
  assert.match(await page.textContent('#slice-series'), new RegExp(`SAG T2 TSE · pixels ${sp.toFixed(2)} × ${sp.toFixed(2)} mm`));
  // The bar: the largest round length at most 110 screen pixels long on the fitted view.
  const bar = await page.evaluate(() => document.querySelector('#view').dataset.scalebar);
  const [w, h] = written.size;
  const pxPerMm = Math.min(640 / w, 640 / h) / sp;
  const expected = [1, 2, 5, 10, 20, 50, 100, 200].filter((mm) => mm * pxPerMm <= 110).pop();
  assert.equal(bar, `${expected} mm`, `${w} x ${h} pixels of ${sp} mm`);
  await page.screenshot({ path: join(artifacts, 'study.png') });

  const json = JSON.parse(await download('#export-json'));
  const file = `study/${written.t2[written.mid]}`;
  assert.deepEqual(json.source, { file, spacing_mm: [sp, sp], series_uid: T2_UID, series_description: 'SAG T2 TSE', slice_index: written.mid, slices: 5 });
  assert.equal(json.results.length, found.length);
  assert.ok(json.results.every((r) => r.image === file && r.probabilities));
  const csv = (await download('#export-csv')).trim().split('\n');
  const header = csv[0].split(',');
  assert.deepEqual(header.slice(-5), ['spacing_row_mm', 'spacing_col_mm', 'series_uid', 'series_description', 'slice_index']);
  const row = Object.fromEntries(csv[1].split(',').map((v, i) => [header[i], v]));
  assert.deepEqual([row.image, Number(row.spacing_row_mm), Number(row.spacing_col_mm), row.series_uid, row.series_description, row.slice_index],
    [file, sp, sp, T2_UID, 'SAG T2 TSE', String(written.mid)]);

  // The wheel moves to the next slice, which gets its own detection.
  const box = await page.locator('#view').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  let n = await runs();
  await page.mouse.wheel(0, 100);
  await waitSlice(written.mid + 1);
  await waitRuns(n);
  const next = await levels();
  assert.ok(next.length >= 3, `slice ${written.mid + 2}: ${await page.textContent('#detection')}`);
  assert.deepEqual(await labels(), [], 'the next slice is not classified');
  // Remove a disc there: the slice keeps that too.
  await page.click('#results li:nth-child(1) .remove');
  const kept = await levels();
  assert.equal(kept.length, next.length - 1);

  // Back with the arrow key: the mid slice's discs and results as they were, no new detection.
  n = await runs();
  await page.keyboard.press('ArrowUp');
  await waitSlice(written.mid);
  assert.deepEqual(await levels(), found);
  assert.deepEqual(await labels(), classified);
  assert.equal(await runs(), n, 'a slice seen before is not detected again');
  await page.keyboard.press('ArrowDown');
  await waitSlice(written.mid + 1);
  assert.deepEqual(await levels(), kept, 'the removed disc stays removed');
  // End and Home reach the ends of the series; the wheel stops there.
  await page.keyboard.press('End');
  await waitSlice(4);
  await page.mouse.wheel(0, 100);
  await page.waitForTimeout(100);
  assert.equal(await sliceIndex(), 4);
  await page.keyboard.press('Home');
  await waitSlice(0);
  assert.equal(await page.textContent('#slice-index'), 'slice 1 / 5');

  // Ctrl+wheel zooms instead: the same slice, a shorter scale bar for the larger pixels.
  const wide = Number((await page.evaluate(() => document.querySelector('#view').dataset.scalebar)).split(' ')[0]);
  // (A script's event: Playwright's wheel does not carry the held Control key.)
  await page.evaluate(() => {
    const c = document.querySelector('#view');
    const r = c.getBoundingClientRect();
    c.dispatchEvent(new WheelEvent('wheel', { deltaY: -300, ctrlKey: true, clientX: r.x + r.width / 2, clientY: r.y + r.height / 2, bubbles: true, cancelable: true }));
  });
  await page.waitForFunction((mm) => Number(document.querySelector('#view').dataset.scalebar.split(' ')[0]) < mm, wide);
  assert.equal(await sliceIndex(), 0);

  // Another series from the list, then back: the T2 series returns to the slice last shown.
  n = await runs();
  await page.click('#series-list li:nth-child(3) button');
  await page.waitForFunction(() => document.querySelector('#slice-index').textContent === 'slice 2 / 4');
  // The axial slice's own ImageOrientationPatient says it is not sagittal, and the page says so.
  await waitRuns(n);
  assert.match(await page.textContent('#detection'), /^Note: The file says this is an axial slice, not a sagittal one/);
  await page.click('#series-list li:nth-child(2) button');
  await waitSlice(0);
  assert.deepEqual(consoleErrors, []);
});

test('a dropped zip and several picked files give the same study', async () => {
  // A zip dropped on the page, as a user drags it from the file manager.
  const zip = await readFile(join(work, 'study.zip'));
  const before = await runs();
  await page.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'study.zip', { type: 'application/zip' }));
    window.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, zip.toString('base64'));
  await page.waitForFunction(() => document.querySelector('#study-status').textContent.includes('proposed'));
  const list = await seriesList();
  assert.deepEqual(list.map((s) => [s.name, s.slices, s.proposed]), [
    ['SAG T1 TSE', 3, false], ['SAG T2 TSE', 5, true], ['AX T2 L4-S1', 4, false]]);
  assert.match(await page.textContent('#study-skipped-list'), /study\.zip\/notes\.txt: not a DICOM file/);
  await waitSlice(written.mid);
  await waitRuns(before);
  assert.ok((await levels()).length >= 3, await page.textContent('#detection'));
  // The slice came out of the zip kept in the worker; the wheel reads the next one from it too.
  const box = await page.locator('#view').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, -100);
  await waitSlice(written.mid - 1);
  // Back on the mid slice (its detected discs kept), the export names the zip's entry.
  await page.keyboard.press('ArrowDown');
  await waitSlice(written.mid);
  const json = JSON.parse(await download('#export-json'));
  assert.match(json.source.file, /^study\.zip\/(b\/)?IM\d{4}$/);
  assert.equal(json.source.series_uid, T2_UID);

  // Several files picked at once (no folder): the same series.
  const dir = join(work, 'study');
  const paths = [...(await readdir(dir)).filter((f) => f.startsWith('IM')).map((f) => join(dir, f)),
    ...(await readdir(join(dir, 'b'))).map((f) => join(dir, 'b', f))];
  await page.setInputFiles('#study-files', paths);
  await page.waitForFunction(() => document.querySelector('#study-status').textContent.includes('proposed: SAG T2 TSE'));
  assert.deepEqual((await seriesList()).map((s) => s.slices), [3, 5, 4]);
  await waitSlice(written.mid);
  await page.screenshot({ path: join(artifacts, 'study-zip.png') });
  assert.deepEqual(consoleErrors, []);
});

test('a zip bomb is refused with the limit it broke, and the page goes on', async () => {
  // Forge one entry's declared size in the central directory (PK\1\2 + 24) to 3 GB.
  const zip = Buffer.from(await readFile(join(work, 'study.zip')));
  const at = zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  zip.writeUInt32LE(3 * 2 ** 30, at + 24);
  await page.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'bomb.zip', { type: 'application/zip' }));
    window.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, zip.toString('base64'));
  await page.waitForFunction(() => document.querySelector('#study-status').textContent.startsWith('No DICOM image series'));
  assert.match(await page.textContent('#study-skipped-list'), /bomb\.zip: entry .* would unpack to 3072 MB, more than the 512 MB one file may have/);
  assert.match(await page.textContent('#error'), /No DICOM image series found/);
  // The worker survived: the folder opens again.
  await page.setInputFiles('#study-folder', join(work, 'study'));
  await waitSlice(written.mid);
  consoleErrors.length = 0;
});
