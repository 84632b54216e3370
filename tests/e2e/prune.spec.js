// Pruning in the page: 2:4 magnitude pruning of block 0 (data-free, no evaluation, to keep SwiftShader's share
// short) → the result's zeros-per-layer bars → a pruned matrix's mask in the Weights view, whole and zoomed in
// by dragging until one cell is one weight. One shared page.
import { test, expect, waitForState, waitForStats, SCREENSHOTS, sharePage } from './fixtures.js';

const RECIPE = { steps: [{ method: 'magnitude', pattern: '2:4', target: 'blk\\.0\\.' }] };
const TENSOR = 'blk.0.attn_q.weight';

let page;
sharePage(async (opened) => {
  page = opened;
  await page.goto(`/?recipe=${encodeURIComponent(JSON.stringify(RECIPE))}`);
  await expect(page.locator('#model-status')).toHaveAttribute('data-load-ms', /\d+/);
});

const view = () => page.locator('#view-compress');
const mask = () => page.locator('#view-weights .mask-map');

test('2:4 on block 0: half of its weights are zero, one bar, and the steps say so', async () => {
  test.setTimeout(300_000);
  await page.locator('.tab[data-view="compress"]').click();
  await view().locator('.eval-play').selectOption('none');
  await view().locator('.run').click();
  await waitForState(page, view().locator('.compress-status'), 'data-state', /^(done|error)$/, 240_000);
  await expect(view().locator('.compress-status')).toHaveAttribute('data-state', 'done');
  await expect(view().locator('.report-table tbody tr')).toHaveCount(7);
  const card = view().locator('.sparsity-card');
  await expect(card).toBeVisible();
  // Q4_1 decodes a few kept weights to exactly 0 as well: half, and a little more.
  const [zeros] = (await card.locator('.sparsity-chart').getAttribute('data-values')).split(',').map(Number);
  expect(zeros).toBeGreaterThanOrEqual(0.5);
  expect(zeros).toBeLessThan(0.51);
  await expect(view().locator('.step-notes')).toContainText('magnitude');
  await page.screenshot({ path: `${SCREENSHOTS}/prune-result.png`, fullPage: true });
});

test('the Weights view draws the mask of a pruned matrix, and a drag zooms in to single weights', async () => {
  await view().locator(`.report-table tr[data-name="${TENSOR}"]`).click();
  await waitForStats(page, TENSOR);
  await expect(page.locator('#view-weights .mask-card')).toBeVisible({ timeout: 120_000 });
  await expect(mask()).toHaveAttribute('data-window', '0,0,576,576');
  await expect(mask()).toHaveAttribute('data-grid', '96,192');
  expect(Number(await mask().getAttribute('data-zeros'))).toBeCloseTo(0.5, 2);
  await expect(mask().locator('.mask-reset')).toBeDisabled();

  // Drag over a small corner: twice, down to fewer weights than cells.
  const canvas = mask().locator('.mask-canvas');
  await canvas.scrollIntoViewIfNeeded();
  for (const share of [0.08, 0.3]) {
    const box = await canvas.boundingBox();
    const before = await mask().getAttribute('data-window');
    await page.mouse.move(box.x + 2, box.y + 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * share, box.y + box.height * share, { steps: 4 });
    await page.mouse.up();
    await expect(mask()).not.toHaveAttribute('data-window', before);
  }
  const [row0, col0, rows, cols] = (await mask().getAttribute('data-window')).split(',').map(Number);
  expect(Math.max(row0, col0)).toBeLessThan(8); // the corner the drags started from
  expect(rows * cols).toBeGreaterThan(3);
  expect(cols).toBeLessThan(192);
  await expect(mask()).toHaveAttribute('data-grid', `${rows},${cols}`); // one cell per weight
  expect(Number(await mask().getAttribute('data-zeros'))).toBeGreaterThan(0.3);
  await expect(mask().locator('.mask-caption')).toContainText('one weight');
  await page.screenshot({ path: `${SCREENSHOTS}/prune-mask-zoomed.png`, fullPage: true });

  await mask().locator('.mask-reset').click();
  await expect(mask()).toHaveAttribute('data-window', '0,0,576,576');
});

test('the recipe form offers each method its own choices: width and depth importance, the pruning allotment',
  async () => {
    await page.locator('.tab[data-view="compress"]').click();
    await view().locator('.recipe-json').evaluate((details) => { details.open = true; });
    const steps = [{ method: 'prune_neurons' }, { method: 'drop_layers' }, { method: 'wanda' }];
    await view().locator('.recipe-text').fill(JSON.stringify({ steps }));
    const select = (i, key) => view().locator(`.step[data-index="${i}"] select[data-key="${key}"]`);
    const options = (i, key) => select(i, key).locator('option').allTextContents();
    expect(await options(0, 'importance')).toEqual(['activation', 'flap', 'magnitude']);
    await expect(select(0, 'importance')).toHaveValue('activation');
    expect(await options(1, 'importance')).toEqual(['block', 'ppl']);
    expect(await options(2, 'allot')).toEqual(['uniform', 'sensitivity']);

    // Choosing "sensitivity" writes it into the recipe the run sends.
    await select(2, 'allot').selectOption('sensitivity');
    const sent = JSON.parse(await view().locator('.recipe-text').inputValue());
    expect(sent.steps[2].allot).toBe('sensitivity');
  });
