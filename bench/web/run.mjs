// Browser benchmark (not a test): opens www/bench.html in headless Chromium on localhost and
// prints the page's figures: endplate's worker against ONNX Runtime Web on the same model and
// inputs. Run by `./build.sh bench-web`, which builds the wasm package and copies ORT's files.
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { root, www, serve, launch } from '../../tests/browser/harness.mjs';

const runs = process.env.RUNS ?? 15;
const { server, origin } = await serve(www);
const { context } = await launch();
try {
  const page = context.pages()[0] ?? await context.newPage();
  const offsite = [];
  context.on('request', (r) => { if (!r.url().startsWith(origin)) offsite.push(r.url()); });
  const wasm = process.env.WASM ? `&wasm=${process.env.WASM}` : '';
  await page.goto(`${origin}/bench.html?runs=${runs}${wasm}`);
  await page.waitForFunction(() => window.benchResult, null, { timeout: 300000 });
  const result = await page.evaluate(() => window.benchResult);
  console.log(await page.textContent('#out'));
  if (offsite.length) console.log(`requests off the origin: ${offsite.join(', ')}`);
  await mkdir(join(root, 'target/bench'), { recursive: true });
  await writeFile(join(root, 'target/bench/web.json'), JSON.stringify(result, null, 2));
  console.log('\n(target/bench/web.json)');
} finally {
  await context.close();
  server.close();
}
