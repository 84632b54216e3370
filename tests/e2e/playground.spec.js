// The main journey through the playground: load the default model → its histogram → quantise one block to
// int4 → the run is a row in the Experiments table and a point on the trade-off plot → generate with the
// compressed model (its decode speed joins the row) → a reload finds the experiments again → the address
// holds model, recipe, view and tensor, and a shared link restores them. Then a second experiment, the
// Pareto frontier, CSV/JSON export and two experiments compared side by side. One shared page.
import { readFileSync } from 'node:fs';
import { test, expect, expectNoConsoleErrors, waitForModel, waitForStats, waitForState, watchConsole, countPixels,
  SCREENSHOTS, sharePage } from './fixtures.js';

const BARS = [0x4f, 0x46, 0xe5]; // COLORS.bars: the histogram, the experiments' points
const FRONTIER = [0x0f, 0x76, 0x6e]; // COLORS.line
const BLOCK0 = 'blk\\.0\\.';

let page;
sharePage((opened) => (page = opened));

const tab = (view) => page.locator(`.tab[data-view="${view}"]`);
const compress = () => page.locator('#view-compress');
const experiments = () => page.locator('#view-experiments');
const rows = () => experiments().locator('.experiment-table tbody tr');

/** Runs an rtn recipe on `target` from the Compress view, evaluated on Hamlet at ctx 64, one chunk. */
async function compressRtn(bits, target) {
  await tab('compress').click();
  const step = compress().locator('.step[data-index="0"]');
  await step.locator('.method').selectOption('rtn');
  await step.locator('[data-key="bits"]').fill(String(bits));
  await step.locator('[data-key="group"]').fill('128');
  await step.locator('[data-key="target"]').fill(target);
  await compress().locator('.eval-play').selectOption('hamlet_gut.txt');
  await compress().locator('.eval-ctx').selectOption('64');
  await compress().locator('.eval-chunks').fill('1');
  const before = await compress().locator('.compress-result').getAttribute('data-bpw-compressed');
  await compress().locator('.run').click();
  await waitForState(page, compress().locator('.compress-status'), 'data-state', /^(done|error)$/, 540_000);
  await expect(compress().locator('.compress-status')).toHaveAttribute('data-state', 'done');
  expect(await compress().locator('.compress-result').getAttribute('data-bpw-compressed')).not.toBe(before);
}

test('load → histogram → int4 on block 0 → a row in the table and a point on the trade-off plot', async () => {
  test.setTimeout(600_000);
  await tab('weights').click();
  await waitForStats(page, 'blk.0.attn_q.weight');
  expect(await countPixels(page, '#view-weights .hist-chart', BARS)).toBeGreaterThan(500);
  await page.screenshot({ path: `${SCREENSHOTS}/journey-1-histogram.png`, fullPage: true });

  // Each method shows its explanation and its key formula.
  await tab('compress').click();
  const step = compress().locator('.step[data-index="0"]');
  await step.locator('.method').selectOption('gptq');
  await expect(step.locator('.formula')).toContainText('[H⁻¹]_jj');
  await step.locator('.method').selectOption('rtn');
  await expect(step.locator('.formula')).toContainText('round(w / s)');

  await compressRtn(4, BLOCK0);
  const bpwRewritten = Number(await compress().locator('.compress-result').getAttribute('data-bpw-compressed'));
  // 4 bits + an f16 scale and zero per group: 576-wide rows hold 4 groups of 128 and one of 64, ffn_down's
  // 1536-wide rows 12 of 128, so (4608 rows × (576·4 + 5·32) + 576 × (1536·4 + 12·32)) / 3,538,944 weights.
  expect(bpwRewritten).toBeCloseTo((4608 * 2464 + 576 * 6528) / 3538944, 6);
  const kld = Number(await compress().locator('.compress-facts [data-key="kld"]').getAttribute('data-value'));
  const bpw = Number(await compress().locator('.compress-facts [data-key="bpw"]').getAttribute('data-value'));
  await page.screenshot({ path: `${SCREENSHOTS}/journey-2-compressed.png`, fullPage: true });

  await tab('experiments').click();
  await expect(rows()).toHaveCount(1);
  const row = rows().first();
  await expect(row.locator('.recipe-cell')).toContainText('rtn 4-bit g128 on blk\\.0\\.');
  await expect(row.locator('[data-key="bpw"]')).toHaveText(bpw.toFixed(3));
  expect(Number(await row.locator('[data-key="kld"]').textContent())).toBeCloseTo(kld, 3);
  await expect(row).toHaveAttribute('aria-selected', 'true'); // the newest is selected
  await expect(row.locator('[data-key="speed"]')).toHaveText('—');

  // The plot: one point (and the frontier through it), and the original as the reference.
  const chart = experiments().locator('.tradeoff-chart');
  const id = await row.getAttribute('data-id');
  await expect(chart).toHaveAttribute('data-plotted', id);
  await expect(chart).toHaveAttribute('data-frontier', id);
  const series = await chart.evaluate((el) => el._chart.series.map((s) => s.label));
  expect(series[1]).toBe('experiments');
  expect(series[3]).toMatch(/^original \(\d+\.\d\d, KLD 0\)$/);
  const point = await chart.evaluate((el) => el._chart.data[1].map((a) => a[0]));
  expect(point[0]).toBeCloseTo(bpw, 6);
  expect(point[1]).toBeCloseTo(kld, 6);
  expect(await countPixels(page, '#view-experiments .tradeoff-chart', BARS)).toBeGreaterThan(20);
  await expect(experiments().locator('.plot-note')).toContainText('Selected: rtn 4-bit');
  await page.screenshot({ path: `${SCREENSHOTS}/journey-3-experiments.png`, fullPage: true });
});

test('generate with the compressed model: the experiment gets its decode speed', async () => {
  await tab('generate').click();
  const gen = page.locator('#view-generate');
  await gen.locator('.model-choice').selectOption('compressed');
  await gen.locator('.greedy').check();
  await gen.locator('.max_tokens').fill('4');
  await gen.locator('.run').click();
  await waitForState(page, gen.locator('.gen-output'), 'data-state', /^done$/);
  const rate = Number(await gen.locator('.gen-summary [data-key="decode_tokens_per_s"]').getAttribute('data-value'));
  expect(rate).toBeGreaterThan(0);
  await tab('experiments').click();
  await expect(rows().first().locator('[data-key="speed"]')).toHaveText(rate.toFixed(2));
});

test('the address holds model, recipe and view; a reload restores them and the experiments', async () => {
  await tab('weights').click();
  await page.locator('#view-weights .tensor-pick').fill('blk.0.ffn_down.weight');
  await page.locator('#view-weights .tensor-pick').press('Enter');
  await waitForStats(page, 'blk.0.ffn_down.weight');
  await tab('experiments').click();
  const url = new URL(page.url());
  expect(url.searchParams.get('model')).toBe('default');
  expect(url.searchParams.get('view')).toBe('experiments');
  expect(url.searchParams.get('tensor')).toBe('blk.0.ffn_down.weight');
  expect(JSON.parse(url.searchParams.get('recipe')).steps[0]).toMatchObject({ method: 'rtn', bits: 4, target: BLOCK0 });

  await page.reload();
  await waitForModel(page);
  await expect(tab('experiments')).toHaveAttribute('aria-current', 'page');
  await expect(rows()).toHaveCount(1);
  await expect(rows().first().locator('.recipe-cell')).toContainText('rtn 4-bit g128');
  expect(Number(await rows().first().locator('[data-key="speed"]').textContent())).toBeGreaterThan(0);
  await expect(compress().locator('.step[data-index="0"] [data-key="target"]')).toHaveValue(BLOCK0);
});

test('a shared link opens the same view, tensor and recipe in a fresh page', async ({ browser }, testInfo) => {
  const { baseURL, viewport } = testInfo.project.use;
  const fresh = await browser.newPage({ baseURL, viewport });
  const freshErrors = watchConsole(fresh);
  const recipe = { steps: [{ method: 'nf4', group: 64, target: 'ffn_up' }] };
  await fresh.goto(`/?model=default&view=weights&tensor=blk.3.ffn_up.weight&recipe=${
    encodeURIComponent(JSON.stringify(recipe))}`);
  await waitForModel(fresh);
  await expect(fresh.locator('.tab[data-view="weights"]')).toHaveAttribute('aria-current', 'page');
  await waitForStats(fresh, 'blk.3.ffn_up.weight');
  await expect(fresh.locator('#view-weights .tensor-title h2')).toHaveText('blk.3.ffn_up.weight');
  await expect(fresh.locator('#view-compress .step .method')).toHaveValue('nf4');
  await expect(fresh.locator('#view-compress .step [data-key="target"]')).toHaveValue('ffn_up');
  await fresh.close();
  expectNoConsoleErrors(freshErrors);
});

test('a second experiment: the frontier, a click on a point, CSV and JSON export', async () => {
  test.setTimeout(600_000);
  await compressRtn(3, BLOCK0);
  await tab('experiments').click();
  await expect(rows()).toHaveCount(2);
  const chart = experiments().locator('.tradeoff-chart');
  const ids = await rows().evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
  await expect(chart).toHaveAttribute('data-plotted', ids.join(','));
  // 3 bits is smaller and further from the original than 4 bits: neither dominates, both on the frontier.
  expect((await chart.getAttribute('data-frontier')).split(',').sort()).toEqual([...ids].sort());
  expect(await countPixels(page, '#view-experiments .tradeoff-chart', FRONTIER)).toBeGreaterThan(20);

  // Click the 4-bit point: its row is selected.
  await chart.scrollIntoViewIfNeeded();
  const [x, y] = await chart.evaluate((el) => {
    const u = el._chart;
    const [xs, ys] = u.data[1];
    const box = u.over.getBoundingClientRect();
    return [box.left + u.valToPos(xs[0], 'x'), box.top + u.valToPos(ys[0], 'y')];
  });
  await page.mouse.click(x, y);
  await expect(rows().nth(0)).toHaveAttribute('aria-selected', 'true');
  await expect(rows().nth(1)).toHaveAttribute('aria-selected', 'false');

  // Perplexity on a linear axis, and size as x: the original is then a point.
  await experiments().locator('.y-axis').selectOption('ppl');
  await experiments().locator('.log-y').uncheck();
  await experiments().locator('.x-axis').selectOption('size');
  const original = await chart.evaluate((el) => el._chart.data[3].map((a) => a.length));
  expect(original).toEqual([1, 1]);
  await page.screenshot({ path: `${SCREENSHOTS}/journey-4-two-experiments.png`, fullPage: true });

  const csvDownload = page.waitForEvent('download');
  await experiments().locator('.export-csv').click();
  const [header, ...lines] = parseCsv(readFileSync(await (await csvDownload).path(), 'utf8'));
  expect(lines).toHaveLength(2);
  expect(header).toEqual(expect.arrayContaining(['recipe_summary', 'recipe_json', 'bits_per_weight', 'size_mb',
    'perplexity', 'kld', 'top1', 'tokens_per_s']));
  const column = (name) => lines.map((cells) => cells[header.indexOf(name)]);
  const bits = column('bits_per_weight').map(Number);
  expect(bits[0]).toBeGreaterThan(bits[1]);
  expect(column('recipe_json').map((j) => JSON.parse(j).steps[0].bits)).toEqual([4, 3]);
  expect(Number(column('tokens_per_s')[0])).toBeGreaterThan(0);
  expect(column('tokens_per_s')[1]).toBe(''); // not generated with yet

  const jsonDownload = page.waitForEvent('download');
  await experiments().locator('.export-json').click();
  const json = JSON.parse(readFileSync(await (await jsonDownload).path(), 'utf8'));
  expect(json.experiments.map((e) => e.id)).toEqual(ids);
  expect(json.experiments[1].recipe.steps[0]).toMatchObject({ method: 'rtn', bits: 3, target: BLOCK0 });
});

test('two experiments compared: errors per layer side by side, and both write on the same prompt', async () => {
  test.setTimeout(600_000);
  await rows().nth(0).locator('.compare-pick').check();
  await rows().nth(1).locator('.compare-pick').check();
  const panel = experiments().locator('.compare');
  await expect(panel).toBeVisible();
  const data = await panel.locator('.compare-chart').evaluate((el) => el._chart.data);
  expect(data[0]).toEqual([0]); // block 0 only
  expect(data[2][0]).toBeGreaterThan(data[1][0]); // 3 bits err more than 4
  await panel.locator('.compare-tokens').fill('3');
  await panel.locator('.compare-run').click();
  await expect(panel.locator('.compare-status')).toContainText('Done', { timeout: 540_000 });
  for (const side of [0, 1]) {
    const text = await panel.locator(`.compare-out[data-side="${side}"] .compare-text`).textContent();
    expect(text.trim().length).toBeGreaterThan(0);
  }
  await expect(rows().nth(1).locator('[data-key="speed"]')).not.toHaveText('—');
  await page.screenshot({ path: `${SCREENSHOTS}/journey-5-compare.png`, fullPage: true });

  // Deleting a row removes it from the table, the plot and storage.
  await rows().nth(1).locator('.delete').click();
  await expect(rows()).toHaveCount(1);
  const stored = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('squeeze.experiments')));
  expect(stored).toHaveLength(1);
  expect(JSON.parse(await page.evaluate((k) => localStorage.getItem(k), stored[0]))).toHaveLength(1);
});

/** Rows of RFC 4180 CSV (quoted cells may hold commas, quotes and line breaks). */
function parseCsv(text) {
  const rows = [[]];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') rows.at(-1).push(cell), (cell = '');
    else if (c === '\r' && text[i + 1] === '\n') {
      rows.at(-1).push(cell);
      cell = '';
      rows.push([]);
      i++;
    } else cell += c;
  }
  if (rows.at(-1).length === 0 && cell === '') rows.pop();
  return rows;
}
