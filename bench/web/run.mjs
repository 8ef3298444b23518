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
  const open = async () => {
    await page.goto(`${origin}/bench.html?runs=${runs}${wasm}`);
    await page.waitForFunction(() => window.benchResult, null, { timeout: 300000 });
    return page.evaluate(() => window.benchResult);
  };
  // A first visit (fresh profile: nothing cached), then a revisit (HTTP cache and V8's cache
  // of the compiled wasm warm), as a returning user sees it.
  const result = await open();
  console.log(await page.textContent('#out'));
  const again = await open();
  result.revisit_page_ready_ms = again.endplate.page_ready_ms;
  result.revisit_model_load_ms = again.endplate.model_load_ms;
  console.log(`\nrevisit: page ready ${again.endplate.page_ready_ms.toFixed(0)} ms (wasm ${again.endplate.wasm_ready_ms.toFixed(0)} ms + model ${again.endplate.model_load_ms.toFixed(0)} ms)`);
  if (offsite.length) console.log(`requests off the origin: ${offsite.join(', ')}`);
  await mkdir(join(root, 'target/bench'), { recursive: true });
  await writeFile(join(root, 'target/bench/web.json'), JSON.stringify(result, null, 2));
  console.log('\n(target/bench/web.json)');
} finally {
  await context.close();
  server.close();
}
