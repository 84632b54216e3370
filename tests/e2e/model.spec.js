// The default model loads over WebGPU, the Model view describes it, and the Weights view shows a real
// histogram computed on the GPU. The tests share one page so the 98 MB model is loaded once.
import { test, expect, watchConsole, expectNoConsoleErrors, waitForModel, waitForStats, countPixels, statValue,
  SCREENSHOTS }
  from './fixtures.js';

test.describe.configure({ mode: 'serial' });

let page;
let errors;

test.beforeAll(async ({ browser }, testInfo) => {
  const { baseURL, viewport } = testInfo.project.use;
  page = await browser.newPage({ baseURL, viewport });
  errors = watchConsole(page);
});

test.afterEach(() => expectNoConsoleErrors(errors));
test.afterAll(() => page?.close());

test('the default model loads over WebGPU and the Model view describes it', async () => {
  await page.goto('/');
  // Best effort: a picture of the progress bar, if the load is slow enough to catch it.
  await page.locator('#progress').waitFor({ timeout: 15_000 })
    .then(() => page.screenshot({ path: `${SCREENSHOTS}/loading.png` }))
    .catch(() => {});
  await expect(page.locator('#load-default')).toHaveText(/Load SmolLM2-135M-Instruct \(Q4_1, 98(\.\d)? MB\)/);
  const loadMs = await waitForModel(page);
  test.info().annotations.push({ type: 'model load time (in page)', description: `${loadMs} ms` });
  console.log(`    model load time measured in the page: ${loadMs} ms`);

  await expect(page.locator('#gpu-badge')).not.toHaveText(/starting|no WebGPU/);
  const fact = (key) => page.locator(`.facts [data-key="${key}"] dd`);
  await expect(fact('n_layers')).toHaveText('30');
  await expect(fact('d_model')).toHaveText('576');
  await expect(fact('n_heads')).toHaveText('9');
  await expect(fact('n_kv_heads')).toHaveText('3');
  await expect(fact('tensor_count')).toHaveText('272');
  await expect(page.locator('#tensor-table tbody tr')).toHaveCount(272);

  // Filtering and sorting the table.
  await page.locator('.tensor-search').fill('attn_q');
  await expect(page.locator('#tensor-table tbody tr')).toHaveCount(30);
  await page.locator('.tensor-search').fill('');
  await page.locator('#tensor-table th[data-key="n_bytes"] button').click();
  await expect(page.locator('#tensor-table th[data-key="n_bytes"]')).toHaveAttribute('aria-sort', 'ascending');
  await page.locator('#tensor-table th[data-key="name"] button').click();

  await page.screenshot({ path: `${SCREENSHOTS}/model-1280.png`, fullPage: true });
  await page.setViewportSize({ width: 820, height: 1180 });
  await page.screenshot({ path: `${SCREENSHOTS}/model-tablet.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 720 });
});

test('choosing blk.0.attn_q.weight shows its histogram, statistics and channel outliers', async () => {
  const name = 'blk.0.attn_q.weight';
  // Keyboard path: focus the row, press Enter.
  await page.locator(`#tensor-table tr[data-name="${name}"]`).focus();
  await page.keyboard.press('Enter');
  await expect(page.locator('.tab[data-view="weights"]')).toHaveAttribute('aria-current', 'page');
  await expect(page.locator('.tensor-title h2')).toHaveText(name);
  await waitForStats(page, name);
  await expect(page.locator('.stats-table [data-stat="n"]')).toHaveAttribute('data-value', String(576 * 576));

  for (const key of ['min', 'max', 'mean', 'std', 'kurtosis']) {
    expect(Number.isFinite(await statValue(page, key)), `${key} is finite`).toBe(true);
  }
  expect(await statValue(page, 'min')).toBeLessThan(await statValue(page, 'max'));
  expect(await statValue(page, 'std')).toBeGreaterThan(0);
  await expect(page.locator('.quantile-table tr')).toHaveCount(9);

  // The histogram's bins hold every element, and its bars are drawn in the bar colour.
  const counts = () => page.locator('.hist-chart').evaluate((el) => Array.from(el._chart.data[1]));
  let bins = await counts();
  expect(bins).toHaveLength(128);
  expect(bins.reduce((a, b) => a + b, 0)).toBe(576 * 576);
  const BAR = [0x4f, 0x46, 0xe5];
  expect(await countPixels(page, '.hist-chart', BAR)).toBeGreaterThan(500);

  await page.locator('.weights .log').check();
  await expect(page.locator('.hist-chart')).toHaveAttribute('aria-label', /log scale/);
  expect(await page.locator('.hist-chart').evaluate((el) => el._chart.scales.y.distr)).toBe(3);
  expect(await countPixels(page, '.hist-chart', BAR)).toBeGreaterThan(500);

  await page.locator('.weights .bins').selectOption('256');
  await expect.poll(async () => (await counts()).length).toBe(256);
  bins = (await counts()).map((c) => c ?? 0); // empty bins are gaps on the log axis
  expect(bins.reduce((a, b) => a + b, 0)).toBe(576 * 576);

  // Outlier channels: one marker per listed top channel, drawn in red.
  await expect(page.locator('.top-table tbody tr')).toHaveCount(8);
  expect(await countPixels(page, '.channel-chart', [0xdc, 0x26, 0x26])).toBeGreaterThan(20);
  const channels = await page.locator('.channel-chart').evaluate((el) => el._chart.data[1].length);
  expect(channels).toBe(576);

  await page.screenshot({ path: `${SCREENSHOTS}/weights-1280.png`, fullPage: true });
  await page.setViewportSize({ width: 820, height: 1180 });
  await page.screenshot({ path: `${SCREENSHOTS}/weights-tablet.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 720 });
});
