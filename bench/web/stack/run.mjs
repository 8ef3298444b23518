// Diagnosis (not a test, not a benchmark of record): does the page's detection speed depend on
// where V8 leaves the machine stack? Runs one real slice's detection CALLS times in a row in a
// worker, then through 0..DEPTHS-1 extra JavaScript frames. With tract's 8x8 wasm kernel the
// calls jumped from about 85 to 220 ms a little over a hundred calls in, and the extra frames
// flipped them between the two (DEVELOPERS.md, "Page timing"). Run by `./build.sh bench-stack`.
import { mkdir, copyFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { root, www, serve, launch } from '../../../tests/browser/harness.mjs';

const sliceDir = process.env.SLICES ?? resolve(root, '../shared/data/spider-t2-sample');
const slice = process.env.SLICE ?? 'spider_120_t2.png';
if (!existsSync(join(sliceDir, slice))) {
  console.log(`${join(sliceDir, slice)} is missing: nothing to run (SLICES=dir SLICE=file.png picks another)`);
  process.exit(0);
}
const dir = join(www, 'vendor/stack');
await mkdir(dir, { recursive: true });
for (const f of ['page.html', 'worker.js']) await copyFile(join(import.meta.dirname, f), join(dir, f));
await copyFile(join(sliceDir, slice), join(dir, slice));
const { server, origin } = await serve(www);
const { context } = await launch();
try {
  const page = context.pages()[0] ?? await context.newPage();
  const q = new URLSearchParams({ slice, calls: process.env.CALLS ?? 250, depths: process.env.DEPTHS ?? 12, wasm: process.env.WASM ?? 'relaxed' });
  await page.goto(`${origin}/vendor/stack/page.html?${q}`);
  await page.waitForFunction(() => window.result, null, { timeout: 600000 });
  const r = await page.evaluate(() => window.result);
  if (r.error) throw new Error(r.error);
  console.log(`${slice}: ${r.calls.length} detections in a row, ms (in the worker):`);
  for (let k = 0; k < r.calls.length; k += 25) console.log(`  ${String(k).padStart(3)}: ${r.calls.slice(k, k + 25).map((x) => x.toFixed(0)).join(' ')}`);
  console.log('then through extra JavaScript frames, depth:ms');
  console.log(`  ${r.depths.map(([d, ms]) => `${d}:${ms.toFixed(0)}`).join(' ')}`);
  const sorted = [...r.calls].sort((a, b) => a - b);
  console.log(`median ${sorted[Math.floor(sorted.length / 2)].toFixed(1)} ms, slowest ${sorted[sorted.length - 1].toFixed(1)} ms`);
} finally {
  await context.close();
  server.close();
}
