// The Explorer view: the layer-sensitivity scan draws one KL-divergence bar per block it compressed alone
// (two blocks here, to keep it short on SwiftShader) and Cancel stops a longer one; the activation recording
// draws a layer × channel heat map, follows the largest channels through the layers, and names the systematic
// outlier channels. One shared page.
import { test, expect, waitForState, countPixels, SCREENSHOTS, sharePage } from './fixtures.js';

const BARS = [0x4f, 0x46, 0xe5];

let page;
sharePage((opened) => (page = opened).locator('.tab[data-view="explorer"]').click());

const view = () => page.locator('#view-explorer');

test('the sensitivity scan of blocks 0 and 1 draws a KL-divergence bar for each', async () => {
  test.setTimeout(600_000);
  await expect(view().locator('.sens-method')).toHaveValue('rtn');
  await expect(view().locator('.sens-bits')).toHaveValue('4'); // rtn's defaults
  await view().locator('.sens-bits').fill('3');
  await view().locator('.sens-target').fill('blk\\.(0|1)\\.');
  await view().locator('.sens-ctx').selectOption('32');
  await view().locator('.sens-run').click();
  await waitForState(page, view().locator('.sens-chart'), 'data-blocks', /^\d+$/, 540_000);
  await expect(view().locator('.sens-chart')).toHaveAttribute('data-blocks', '2');
  const [blocks, kld] = await view().locator('.sens-chart').evaluate((el) => el._chart.data.map((a) => Array.from(a)));
  expect(blocks).toEqual([0, 1]);
  for (const k of kld) expect(Number.isFinite(k) && k > 0, `KLD ${k}`).toBe(true);
  expect(await countPixels(page, '#view-explorer .sens-chart', BARS)).toBeGreaterThan(200);
  await expect(view().locator('.sens-top')).toContainText('Most sensitive: block');
  await expect(view().locator('.sens-progress')).toBeHidden();
  await page.screenshot({ path: `${SCREENSHOTS}/explorer-sensitivity.png`, fullPage: true });

  // Linear scale redraws the same bars.
  await view().locator('.sens-log').uncheck();
  await expect(view().locator('.sens-chart')).not.toHaveAttribute('aria-label', /log scale/);
  await view().locator('.sens-log').check();
});

test('Cancel stops a scan of every block and keeps the bars drawn before', async () => {
  await view().locator('.sens-target').fill('');
  await view().locator('.sens-run').click();
  await waitForState(page, view().locator('.sens-progress'), 'data-phase', /^(base log-probs|sensitivity)$/, 120_000);
  await expect(view().locator('.sens-progress .amount')).toContainText('/');
  await view().locator('.sens-cancel').click();
  await expect(view().locator('.sens-status')).toHaveText('Cancelled.', { timeout: 240_000 });
  await expect(view().locator('.sens-run')).toBeEnabled();
  await expect(view().locator('.sens-chart')).toHaveAttribute('data-blocks', '2');
});

test('activation outliers: a heat map per layer and channel, and the systematic outlier channels', async () => {
  test.setTimeout(300_000);
  await view().locator('.act-tokens').fill('24');
  await view().locator('.act-run').click();
  await expect(view().locator('.act-result')).toBeVisible({ timeout: 240_000 });
  await expect(view().locator('.act-status')).toContainText('30 blocks recorded');

  // The heat map: 30 layers × 576 channels of the attention input, drawn in colour.
  const map = view().locator('.heat-map');
  await expect(map).toHaveAttribute('aria-label', /input channel \(576\) and layer \(30\)/);
  const colours = await map.evaluate((canvas) => {
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    const seen = new Set();
    for (let i = 0; i < data.length; i += 4 * 37) seen.add(`${data[i] >> 4},${data[i + 1] >> 4},${data[i + 2] >> 4}`);
    return seen.size;
  });
  expect(colours).toBeGreaterThan(20);

  // The table names channels that stand out in many layers, far above the median channel.
  const first = view().locator('.act-table tbody tr').first();
  const layers = Number((await first.locator('td').nth(1).textContent()).split(' ')[0]);
  const ratio = parseFloat(await first.locator('td').nth(4).textContent());
  expect(layers).toBeGreaterThanOrEqual(10);
  expect(ratio).toBeGreaterThan(5);
  const top = Number(await view().locator('.activations').getAttribute('data-top-channel'));
  const lines = await view().locator('.act-chart').evaluate((el) => el._chart.series.map((s) => s.label));
  expect(lines[1]).toBe(`channel ${top}`);
  expect(lines.at(-1)).toBe('median channel');
  await page.screenshot({ path: `${SCREENSHOTS}/explorer-activations.png`, fullPage: true });

  // The down projection's input is 1536 wide.
  await view().locator('.act-site').selectOption('down_in');
  await expect(map).toHaveAttribute('aria-label', /input channel \(1536\) and layer \(30\)/);
  console.log(`    activation outliers (attention input, 24 tokens): channel ${top} in the top 8 of ${layers} ` +
    `layers, ${ratio}× the median at its peak`);
});
