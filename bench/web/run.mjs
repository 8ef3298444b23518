// Browser benchmark (not a test): opens www/bench.html in headless Chromium on localhost and
// prints the page's figures: endplate's worker against ONNX Runtime Web on the same model and
// inputs. Run by `./build.sh bench-web`, which builds the wasm package and copies ORT's files.
//
// Page ready is noisy on a 2-core machine, so it is sampled over VISITS fresh browsers (default
// 7): each one is launched with an empty profile and left idle for 2 s, so that the browser's
// own start-up work is not billed to the page; then a first visit (nothing cached) and a revisit
// (HTTP cache and V8's cache of the compiled wasm warm), as a returning user sees it.
import { writeFile, mkdir, copyFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { root, www, serve, launch } from '../../tests/browser/harness.mjs';

const runs = process.env.RUNS ?? 15;
const visits = Number(process.env.VISITS ?? 7);
const wasm = process.env.WASM ? `&wasm=${process.env.WASM}` : '';
// The detector runs on the real SPIDER slices of the shared folder's sample (SLICES=dir picks
// another folder of PNGs), copied under www/vendor/ (a build output) so the page can fetch
// them; without them, on a phantom.
const sliceDir = process.env.SLICES ?? resolve(root, '../shared/data/spider-t2-sample');
const pngs = existsSync(sliceDir) ? (await readdir(sliceDir)).filter((f) => f.endsWith('.png')).sort() : [];
let slices = '';
if (pngs.length) {
  await mkdir(join(www, 'vendor/bench'), { recursive: true });
  for (const f of pngs) await copyFile(join(sliceDir, f), join(www, 'vendor/bench', f));
  slices = `&slices=${pngs.map((f) => encodeURIComponent(`vendor/bench/${f}`)).join(',')}`;
} else {
  console.log(`no PNG slices in ${sliceDir}: the detector runs on a phantom\n`);
}
// ONNX Runtime Web gets the detector cut to the network a view runs
// (bench/detector_first_network.py says why), where Python's onnx is installed.
let ortDetector = '';
await mkdir(join(www, 'vendor/bench'), { recursive: true });
const py = spawnSync('python3', [join(root, 'bench/detector_first_network.py'),
  join(root, 'models/endplate-detector.onnx'), join(www, 'vendor/bench/endplate-detector-maps.onnx')], { encoding: 'utf8' });
if (py.status === 0) {
  ortDetector = `&ortDetector=${encodeURIComponent('vendor/bench/endplate-detector-maps.onnx')}`;
} else {
  console.log(`could not cut the detector to its first network (pip install onnx): ONNX Runtime Web runs the whole file\n${py.stderr}`);
}
const { server, origin } = await serve(www);
const offsite = [];

/// A fresh browser, idle for 2 s; `visit(query)` opens the benchmark page and returns its result.
async function browser() {
  const { context } = await launch();
  context.on('request', (r) => { if (!r.url().startsWith(origin)) offsite.push(r.url()); });
  const page = context.pages()[0] ?? await context.newPage();
  await page.goto('about:blank');
  await new Promise((r) => setTimeout(r, 2000));
  const visit = async (query) => {
    await page.goto(`${origin}/bench.html?${query}${wasm}`);
    await page.waitForFunction(() => window.benchResult, null, { timeout: 300000 });
    const result = await page.evaluate(() => window.benchResult);
    if (result.error) throw new Error(`bench page: ${result.error}`);
    return { result, text: await page.textContent('#out') };
  };
  return { context, visit };
}

const sorted = (v) => [...v].sort((a, b) => a - b);
const summary = (v) => {
  const s = sorted(v);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1], all: v };
};
const show = ({ median, min, max }) => `${median.toFixed(0)} ms median (${min.toFixed(0)}-${max.toFixed(0)})`;

try {
  const first = [];
  const revisit = [];
  for (let i = 0; i < visits; i++) {
    const { context, visit } = await browser();
    try {
      first.push((await visit('ready')).result.endplate);
      revisit.push((await visit('ready')).result.endplate);
    } finally {
      await context.close();
    }
  }
  const ready = visits ? {
    first_visit_ms: summary(first.map((r) => r.page_ready_ms)),
    first_visit_wasm_ms: summary(first.map((r) => r.wasm_ready_ms)),
    first_visit_model_ms: summary(first.map((r) => r.model_load_ms)),
    first_visit_detector_ready_ms: summary(first.map((r) => r.detector_ready_ms)),
    first_visit_detector_load_ms: summary(first.map((r) => r.detector_load_ms)),
    revisit_ms: summary(revisit.map((r) => r.page_ready_ms)),
  } : null;
  if (ready) {
    console.log(`page ready (navigation to model active), ${visits} fresh browsers:`);
    console.log(`  first visit ${show(ready.first_visit_ms)}: wasm ready at ${show(ready.first_visit_wasm_ms)}; model load ${show(ready.first_visit_model_ms)}`);
    console.log(`  disc detector loaded after it: ready at ${show(ready.first_visit_detector_ready_ms)}; load ${show(ready.first_visit_detector_load_ms)}`);
    console.log(`  revisit     ${show(ready.revisit_ms)}\n`);
  }

  const { context, visit } = await browser();
  let result;
  try {
    const { result: r, text } = await visit(`runs=${runs}${slices}${ortDetector}`);
    console.log(text);
    result = { ...r, page_ready: ready };
  } finally {
    await context.close();
  }
  if (offsite.length) console.log(`requests off the origin: ${offsite.join(', ')}`);
  await mkdir(join(root, 'target/bench'), { recursive: true });
  await writeFile(join(root, 'target/bench/web.json'), JSON.stringify(result, null, 2));
  console.log('\n(target/bench/web.json)');
} finally {
  server.close();
}
