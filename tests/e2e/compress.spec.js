// The Compress view: a 4-bit RTN recipe (on the ffn_down matrices only, to keep the evaluation short on
// SwiftShader) runs on the loaded model and reports the bits per weight, the KL
// divergence and perplexity against the original, a per-layer chart and the rewritten tensors; the recipe goes
// into the URL (and a URL's recipe pre-fills the view); the Weights view compares a rewritten tensor with the
// original; the Generate view runs the compressed model; a bad recipe gets wasm's message and changes nothing;
// Cancel stops a run. One shared page, so the model is loaded once.
import { test, expect, expectNoConsoleErrors, waitForStats, waitForState, watchConsole, countPixels, SCREENSHOTS,
  sharePage } from './fixtures.js';

const BARS = [0x4f, 0x46, 0xe5]; // COLORS.bars: the original, and the weight error per layer
const AFTER = [0xd9, 0x77, 0x06]; // COLORS.after: the compressed tensor
const TENSOR = 'blk.0.ffn_down.weight';

let page;
sharePage((opened) => (page = opened));

const view = () => page.locator('#view-compress');
const fact = (key) => view().locator(`.compress-facts [data-key="${key}"]`);
const factValue = async (key) => Number(await fact(key).getAttribute('data-value'));

/** Records every progress phase the view shows while it runs. */
function recordPhases() {
  return page.evaluate(() => {
    const box = document.querySelector('.compress-progress');
    window.__phases = new Set();
    window.__phaseObserver?.disconnect();
    window.__phaseObserver = new MutationObserver((records) => {
      for (const r of records) if (r.oldValue) window.__phases.add(r.oldValue);
      if (box.dataset.phase) window.__phases.add(box.dataset.phase);
    });
    window.__phaseObserver.observe(box, { attributes: true, attributeFilter: ['data-phase'], attributeOldValue: true });
  });
}

test('rtn 4-bit, group 128 on ffn_down: 4.25 bits per rewritten weight, a finite KLD and PPL, the recipe in the URL',
  async () => {
    test.setTimeout(600_000);
    const tab = page.locator('.tab[data-view="compress"]');
    await expect(tab).toBeEnabled();
    await tab.click();
    const step = view().locator('.step[data-index="0"]');
    await step.locator('.method').selectOption('rtn');
    await expect(step.locator('.about')).toContainText('Round to nearest');
    await step.locator('[data-key="bits"]').fill('4');
    await step.locator('[data-key="group"]').fill('128');
    await step.locator('[data-key="target"]').fill('ffn_down');
    await expect(view().locator('.calibration')).toBeHidden(); // rtn is data-free
    const recipe = JSON.parse(await view().locator('.recipe-text').inputValue());
    expect(recipe.steps).toHaveLength(1);
    expect(recipe.steps[0]).toMatchObject({ method: 'rtn', bits: 4, group: 128, target: 'ffn_down' });

    await view().locator('.eval-play').selectOption('hamlet_gut.txt');
    await view().locator('.eval-ctx').selectOption('64');
    await view().locator('.eval-chunks').fill('1');
    await recordPhases();
    const t0 = Date.now();
    await view().locator('.run').click();
    await waitForState(page, view().locator('.compress-result'), 'data-bpw-compressed', /\d/, 540_000);
    const seconds = (Date.now() - t0) / 1000;

    const phases = await page.evaluate(() => [...window.__phases]);
    expect(phases).toEqual(expect.arrayContaining(['compress', 'kl-divergence']));
    const bpw = Number(await view().locator('.compress-result').getAttribute('data-bpw-compressed'));
    expect(Math.abs(bpw - 4.25), `bits per rewritten weight ${bpw}`).toBeLessThan(0.01);
    expect(await factValue('bpw_compressed')).toBe(bpw);
    const modelBpw = await factValue('bpw');
    expect(modelBpw).toBeGreaterThan(4);
    expect(modelBpw).toBeLessThan(16);
    const kld = await factValue('kld');
    const ppl = await factValue('ppl');
    const top1 = await factValue('top1');
    expect(Number.isFinite(kld) && kld > 0, `KLD ${kld}`).toBe(true);
    expect(Number.isFinite(ppl) && ppl > 1, `PPL ${ppl}`).toBe(true);
    expect(top1).toBeGreaterThan(0);
    expect(top1).toBeLessThanOrEqual(1);
    await expect(fact('ppl').locator('dd')).toContainText('→');
    await expect(fact('size').locator('dd')).toContainText(/MB → .*MB/);
    await expect(view().locator('.step-notes > li')).toHaveCount(1);
    await expect(view().locator('.compress-progress')).toBeHidden();
    await expect(view().locator('.run')).toBeEnabled();

    // The recipe that ran is in the address.
    const inUrl = JSON.parse(new URL(page.url()).searchParams.get('recipe'));
    expect(inUrl.steps[0]).toMatchObject({ method: 'rtn', bits: 4, group: 128, target: 'ffn_down' });

    // One ffn_down in each of the 30 blocks, one point per block, drawn.
    await expect(view().locator('.report-table tbody tr')).toHaveCount(30);
    const chart = view().locator('.layer-chart');
    expect(await chart.evaluate((el) => el._chart.data[0].length)).toBe(30);
    expect(await countPixels(page, '#view-compress .layer-chart', BARS)).toBeGreaterThan(50);

    const line = `rtn 4-bit g128 on ffn_down: ${bpw.toFixed(3)} bpw (model ${modelBpw.toFixed(3)}), PPL ` +
      `${await fact('ppl').locator('dd').textContent()}, KLD ${kld.toFixed(4)}, top-1 ${(100 * top1).toFixed(1)}% ` +
      `(Hamlet, ctx 64, 1 chunk) in ${seconds.toFixed(0)} s`;
    test.info().annotations.push({ type: 'compression (in page)', description: line });
    console.log(`    ${line}`);
    await page.screenshot({ path: `${SCREENSHOTS}/compress-1280.png`, fullPage: true });
  });

test('the Weights view draws a rewritten tensor over the original, with its error histogram', async () => {
  await view().locator(`.report-table tr[data-name="${TENSOR}"]`).click();
  await expect(page.locator('.tab[data-view="weights"]')).toHaveAttribute('aria-current', 'page');
  await waitForStats(page, TENSOR);
  const weights = page.locator('#view-weights');
  await expect(weights.locator('.error-card')).toBeVisible({ timeout: 120_000 });
  await expect(weights.locator('.overlay-note')).toContainText('after rtn');

  // Original bars and the compressed line, both densities; and the error's bars.
  const series = await weights.locator('.hist-chart').evaluate((el) => el._chart.series.map((s) => s.label));
  expect(series).toEqual(['value', 'original', 'after rtn']);
  expect(await countPixels(page, '#view-weights .hist-chart', BARS)).toBeGreaterThan(500);
  expect(await countPixels(page, '#view-weights .hist-chart', AFTER)).toBeGreaterThan(50);
  const errorCounts = await weights.locator('.error-chart').evaluate((el) => Array.from(el._chart.data[1]));
  expect(errorCounts.reduce((a, b) => a + b, 0)).toBe(576 * 1536);
  expect(await countPixels(page, '#view-weights .error-chart', AFTER)).toBeGreaterThan(200);
  await expect(weights.locator('.kept-card')).toHaveAttribute('data-kept', '0'); // rtn keeps no outliers
  await expect(weights.locator('.error-facts [data-key="dtype"] dd')).toContainText('→');
  await page.screenshot({ path: `${SCREENSHOTS}/weights-compressed-1280.png`, fullPage: true });

  // The log toggle redraws both.
  await weights.locator('.log').check();
  await expect(weights.locator('.error-chart')).toHaveAttribute('aria-label', /log scale/);
  await weights.locator('.log').uncheck();
});

test('Generate runs the compressed model', async () => {
  await page.locator('.tab[data-view="generate"]').click();
  const gen = page.locator('#view-generate');
  await expect(gen.locator('.model-choice')).toBeEnabled();
  await gen.locator('.model-choice').selectOption('compressed');
  await gen.locator('.greedy').check();
  await gen.locator('.max_tokens').fill('6');
  await gen.locator('.prompt').fill('What is the capital of France?');
  await gen.locator('.run').click();
  await waitForState(page, gen.locator('.gen-output'), 'data-state', /^done$/);
  expect((await gen.locator('.gen-output').textContent()).trim().length).toBeGreaterThan(0);
  await expect(gen.locator('.gen-summary [data-key="model"]')).toHaveAttribute('data-value', 'compressed');
  console.log(`    compressed model wrote: ${JSON.stringify(await gen.locator('.gen-output').textContent())}`);
});

test('a recipe with an unknown method gets wasm’s message listing the valid ones; the page stays usable',
  async () => {
    await page.locator('.tab[data-view="compress"]').click();
    await view().locator('.recipe-json summary').click();
    const box = view().locator('.recipe-text');

    // Broken JSON is flagged inline, as it is typed.
    await box.fill('{"steps": [');
    await expect(view().locator('.json-error')).toContainText('Not valid JSON');

    await box.fill('{"steps": [{"method": "gtpq", "bits": 4}]}');
    await expect(view().locator('.json-error')).toBeHidden();
    await expect(view().locator('.step .about')).toContainText('Not a method this build knows');
    await view().locator('.run').click();
    const banner = page.locator('#error-banner');
    await expect(banner).toContainText('unknown method "gtpq"', { timeout: 60_000 });
    await expect(banner).toContainText('valid: rtn, hqq, gptq, awq');
    await expect(view().locator('.compress-status')).toHaveAttribute('data-state', 'error');
    await page.screenshot({ path: `${SCREENSHOTS}/compress-error.png`, fullPage: true });

    // Usable: the earlier result stays, the form mends the recipe, other views answer.
    await page.locator('#error-banner .error-close').click();
    await expect(view().locator('.run')).toBeEnabled();
    await expect(view().locator('.compress-result')).toBeVisible();
    await view().locator('.step .method').selectOption('nf4');
    expect(JSON.parse(await box.inputValue()).steps[0]).toEqual({ method: 'nf4', group: 64 });
    await page.locator('.tab[data-view="model"]').click();
    await expect(page.locator('#tensor-table tbody tr')).toHaveCount(272);
  });

test('Cancel stops a compression between layers and keeps the previous result', async () => {
  await page.locator('.tab[data-view="compress"]').click();
  await expect(view().locator('.step .method')).toHaveValue('nf4'); // every block's linears, groups of 64
  await view().locator('.run').click();
  await waitForState(page, view().locator('.compress-progress'), 'data-phase', /^compress$/, 120_000);
  await view().locator('.cancel').click();
  await expect(view().locator('.compress-status')).toHaveAttribute('data-state', 'cancelled', { timeout: 120_000 });
  await expect(page.locator('#error-banner')).toBeHidden();
  await expect(view().locator('.run')).toBeEnabled();
  await expect(page.locator('#view-generate .model-choice')).toBeEnabled(); // the earlier compressed model
});

test('a recipe in the URL pre-fills the Compress view', async ({ browser }, testInfo) => {
  const { baseURL, viewport } = testInfo.project.use;
  const fresh = await browser.newPage({ baseURL, viewport });
  const freshErrors = watchConsole(fresh);
  const recipe = { steps: [{ method: 'gptq', bits: 3, group: 64 }, { method: 'nf4', target: 'ffn_down' }] };
  await fresh.goto(`/?autoload=0&recipe=${encodeURIComponent(JSON.stringify(recipe))}`);
  const steps = fresh.locator('#view-compress .step');
  await expect(steps).toHaveCount(2);
  await expect(steps.nth(0).locator('.method')).toHaveValue('gptq');
  await expect(steps.nth(0).locator('[data-key="bits"]')).toHaveValue('3');
  await expect(steps.nth(0).locator('[data-key="group"]')).toHaveValue('64');
  await expect(steps.nth(1).locator('[data-key="target"]')).toHaveValue('ffn_down');
  expect(await fresh.locator('#view-compress .calibration').evaluate((el) => el.hidden)).toBe(false); // gptq
  await fresh.close();
  expectNoConsoleErrors(freshErrors);
});
