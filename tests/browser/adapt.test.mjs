// Adapting in the page: label 50 phantom discs on ten slices (normal / lesion, as a clinic's
// gradings might be), adapt, classify, save the adapted model, load it back: the same
// probabilities. The page's adapted model equals `endplate adapt`'s on the same discs and labels
// (1e-4), and the page refuses too few discs with the library's message. Needs www/pkg and
// target/debug/endplate, like e2e.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { root, www, openApp, openSlice, downloadFrom } from './harness.mjs';

const bin = join(root, 'target/debug/endplate');
const bundled = join(root, 'models/endplate-default.onnx');
const artifacts = join(root, 'target/browser');
const SUBJECTS = 10;

let server, origin, context, page, work;
const consoleErrors = [];

before(async () => {
  assert.ok(existsSync(join(www, 'pkg/relaxed/endplate_bg.wasm')), 'build the wasm package first: ./build.sh wasm');
  assert.ok(existsSync(bin), 'build the native binary first: cargo build');
  await mkdir(artifacts, { recursive: true });
  ({ server, origin, context, page, work } = await openApp({ consoleErrors }));
  await page.goto(origin + '/');
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60000 });
});

after(async () => {
  await context?.close();
  server?.close();
});

const HEADER = 'image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4';

/// Phantom slices and a manifest with binary labels; the subject is the image's name without
/// its extension, which is what the page calls a slice's subject.
function phantoms() {
  const data = join(work, 'phantoms');
  execFileSync(bin, ['synth', '--out', data, '--subjects', String(SUBJECTS), '--seed', '77', '--bits', '16']);
  return readFile(join(data, 'manifest.csv'), 'utf8').then((text) => {
    const rows = text.trim().split('\n').slice(1).map((l) => l.split(','));
    for (const r of rows) {
      r[1] = r[0].split('/').pop().replace(/\.png$/, '');
      r[3] = r[3] === 'normal' ? 'normal' : 'lesion';
    }
    return { data, rows };
  });
}

async function label(rows, data) {
  const image = rows[0][0];
  await openSlice(page, join(data, image));
  const csv = join(work, `${rows[0][1]}.csv`);
  await writeFile(csv, [HEADER, ...rows.map((r) => r.join(','))].join('\n') + '\n');
  await page.setInputFiles('#import-input', csv);
  await page.waitForSelector(`#results li:nth-child(${rows.length}) .disc-label select`);
  for (const r of rows) {
    const n = Number(await page.getAttribute('#adapt', 'data-labelled'));
    await page.selectOption(`#results li[data-level="${r[2]}"] .disc-label select`, r[3]);
    await page.waitForFunction((k) => Number(document.querySelector('#adapt').dataset.labelled) === k, n + 1, { timeout: 60000 });
  }
}

async function exported() {
  const path = await downloadFrom(page, '#export-json', work);
  return JSON.parse(await readFile(path, 'utf8')).results;
}

test('label, adapt, classify, save, reload: the same model as endplate adapt', async () => {
  const { data, rows } = await phantoms();
  const bySlice = [...new Set(rows.map((r) => r[0]))].map((image) => rows.filter((r) => r[0] === image));

  // One slice: too few discs; the page says why and does not adapt.
  await label(bySlice[0], data);
  await page.click('#adapt-btn');
  await page.waitForSelector('#adapt[data-state="refused"]');
  const refusal = await page.textContent('#adapt-status');
  assert.match(refusal, /Not adapted: .*(at least 8|one subject)/);
  console.log(refusal);

  // × takes a disc back, and its label with it; placed and labelled again, it counts again.
  const first = bySlice[0];
  await page.click(`#results li[data-level="${first[0][2]}"] button.remove`);
  await page.waitForFunction((k) => document.querySelector('#adapt').dataset.labelled === String(k), first.length - 1);
  // A new file: an input given the file it already holds fires no change.
  const reimport = join(work, `${first[0][1]}-again.csv`);
  await writeFile(reimport, [HEADER, ...first.map((r) => r.join(','))].join('\n') + '\n');
  await page.setInputFiles('#import-input', reimport);
  await page.waitForSelector(`#results li[data-level="${first[0][2]}"] .disc-label select`);
  await page.selectOption(`#results li[data-level="${first[0][2]}"] .disc-label select`, first[0][3]);
  await page.waitForFunction((k) => document.querySelector('#adapt').dataset.labelled === String(k), first.length);

  for (const s of bySlice.slice(1)) await label(s, data);
  assert.equal(await page.getAttribute('#adapt', 'data-labelled'), String(rows.length));
  await page.click('#adapt-btn');
  await page.waitForSelector('#adapt[data-state="adapted"], #adapt[data-state="refused"]', { timeout: 180000 });
  const status = await page.textContent('#adapt-status');
  assert.equal(await page.getAttribute('#adapt', 'data-state'), 'adapted', status);
  console.log(`${rows.length} discs: ${status}`);
  assert.equal(await page.isHidden('#error'), true, await page.textContent('#error'));
  assert.match(await page.getAttribute('#model-name', 'data-source'), /^file:endplate-default-adapted\.onnx$/);
  await page.screenshot({ path: join(artifacts, 'adapt.png'), fullPage: true });

  // The held-out slices of the page are the CLI's, and so is the adapted model.
  // Image paths are relative to the manifest's folder.
  const manifestDir = join(data, 'labelled.csv');
  await writeFile(manifestDir, [HEADER, ...rows.map((r) => r.join(','))].join('\n') + '\n');
  const cliModel = join(work, 'cli-adapted.onnx');
  const cli = JSON.parse(execFileSync(bin, ['adapt', '--model', bundled, '--manifest', manifestDir, '--out', cliModel, '--json', '--threads', '1']).toString());
  const pageHeld = await page.$$eval('#adapt-table tbody tr', (trs) => trs.map((tr) => tr.cells[0].textContent));
  assert.deepEqual([...new Set(pageHeld)].sort(), [...new Set(cli.discs.map((d) => d.subject))].sort());

  // Classify the open slice with the adapted model, save it, load the saved file: same numbers.
  await page.click('#classify-btn');
  await page.waitForSelector(`#results li:nth-child(5) .class[data-label]`);
  const adapted = await exported();
  // Back to the original model and forth: the discs are classified again by each.
  await page.check('#adapt-use-original');
  await page.waitForSelector('#adapt[data-using="original"]');
  assert.equal(await page.getAttribute('#model-name', 'data-source'), 'bundled');
  const originalResults = await exported();
  assert.ok(originalResults.some((r, i) => Math.abs(r.probabilities.normal - adapted[i].probabilities.normal) > 1e-3),
    'the original model gives other probabilities than the adapted one');
  await page.check('#adapt-use-adapted');
  await page.waitForSelector('#adapt[data-using="adapted"]');
  const again = await exported();
  again.forEach((r, i) => assert.equal(r.probabilities.normal, adapted[i].probabilities.normal));
  const saved = await downloadFrom(page, '#adapt-save', work);
  await page.setInputFiles('#model-input', saved);
  await page.waitForFunction(() => document.querySelector('#model-name').dataset.source === 'file:endplate-default-adapted.onnx'
    && document.querySelector('#adapt').dataset.labelled === '0');
  await page.click('#classify-btn');
  await page.waitForFunction(() => document.querySelectorAll('#results li .class[data-label]').length === 5);
  const reloaded = await exported();
  for (let i = 0; i < 5; i++) {
    for (const k of ['normal', 'wavy', 'notched', 'schmorl']) {
      assert.ok(Math.abs(adapted[i].probabilities[k] - reloaded[i].probabilities[k]) < 1e-6, `${adapted[i].level} ${k}`);
    }
  }
  assert.match(await page.textContent('#model-figures'), /Adapted on \d{4}-\d\d-\d\d from .*: last layer refitted on \d+ labelled discs/);

  // The page's saved model and the CLI's give the same probabilities on all 50 discs.
  const classify = (m) => JSON.parse(execFileSync(bin, ['classify', '--model', m, '--manifest', manifestDir, '--json', '--threads', '1']).toString()).results;
  const [a, b] = [classify(saved), classify(cliModel)];
  let worst = 0;
  a.forEach((r, i) => { for (const k of Object.keys(r.probabilities)) worst = Math.max(worst, Math.abs(r.probabilities[k] - b[i].probabilities[k])); });
  console.log(`page vs CLI adapted model: largest probability difference ${worst.toExponential(2)} over ${a.length} discs`);
  assert.ok(worst < 1e-4, `page and CLI adapted models differ by ${worst}`);
  assert.deepEqual(consoleErrors, []);
});
