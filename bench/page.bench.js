// The page's benchmark (`npm run bench:page`): each recipe run over the whole default model in headless
// Chromium through the Compress view (no evaluation: this measures the method), then a few greedy tokens with
// the compressed model for its decode speed. Prints one table; asserts only that every run finished.
// BENCH_RECIPES (a JSON list of recipes) replaces the default list; BENCH_TOKENS the generated tokens.
import { test, expect, waitForModel, waitForState } from '../tests/e2e/fixtures.js';

const RECIPES = process.env.BENCH_RECIPES ? JSON.parse(process.env.BENCH_RECIPES) : [
  { steps: [{ method: 'rtn', bits: 4, group: 128 }] },
  { steps: [{ method: 'rtn', format: 'q4_0' }] },
  { steps: [{ method: 'nf4' }] },
  { steps: [{ method: 'mxfp4' }] },
  { steps: [{ method: 'fp8_e4m3' }] },
  { steps: [{ method: 'hqq', bits: 3, group: 64 }] },
  { steps: [{ method: 'smoothquant', alpha: 0.8, bits: 8 }] },
  { steps: [{ method: 'llm_int8' }] },
  { steps: [{ method: 'gptq', bits: 4, group: 128, damp: 0.1 }] },
];
const TOKENS = Number(process.env.BENCH_TOKENS ?? 8);

test('whole-model compression and decode speed in the page', async ({ browser }, testInfo) => {
  test.setTimeout(0);
  const { baseURL, viewport } = testInfo.project.use;
  const page = await browser.newPage({ baseURL, viewport });
  const seconds = [];
  page.on('console', (msg) => {
    const m = /compressed (\d+) tensors .* in ([\d.]+) s/.exec(msg.text());
    if (m) seconds.push({ tensors: Number(m[1]), s: Number(m[2]) });
  });
  const view = page.locator('#view-compress');
  const rows = [];
  for (const { steps } of RECIPES) {
    // A fresh page per recipe, the recipe in its address (as a shared link would give it).
    await page.goto(`/?recipe=${encodeURIComponent(JSON.stringify({ steps }))}`);
    await waitForModel(page);
    await page.locator('.tab[data-view="compress"]').click();
    await view.locator('.eval-play').selectOption('none');
    const before = seconds.length;
    await view.locator('.run').click();
    await waitForState(page, view.locator('.compress-status'), 'data-state', /^(done|error)$/, 3_600_000);
    await expect(view.locator('.compress-status')).toHaveAttribute('data-state', 'done');
    await expect.poll(() => seconds.length).toBeGreaterThan(before);
    const bpw = Number(await view.locator('.compress-result').getAttribute('data-bpw-compressed'));

    await page.locator('.tab[data-view="generate"]').click();
    const gen = page.locator('#view-generate');
    await gen.locator('.model-choice').selectOption('compressed');
    await gen.locator('.greedy').check();
    await gen.locator('.max_tokens').fill(String(TOKENS));
    await gen.locator('.run').click();
    await waitForState(page, gen.locator('.gen-output'), 'data-state', /^done$/, 600_000);
    const decode = Number(await gen.locator('.gen-summary [data-key="decode_tokens_per_s"]').getAttribute('data-value'));
    rows.push({ recipe: JSON.stringify(steps), bpw, ...seconds.at(-1), decode });
  }
  console.log('\n| recipe (whole model) | bits/weight | tensors | seconds | decode tokens/s |\n|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| \`${r.recipe}\` | ${r.bpw.toFixed(3)} | ${r.tensors} | ${r.s.toFixed(1)} | ${r.decode.toFixed(2)} |`);
  }
  await page.close();
});
