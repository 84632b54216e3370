// The Evaluate view: perplexity on a bundled play gives a sensible number and a chart of the running estimate;
// a text too short for the context gets a clear message and the page stays usable. One shared page.
import { test, expect, waitForState, SCREENSHOTS, sharePage } from './fixtures.js';

let page;
sharePage((opened) => (page = opened));

const view = () => page.locator('#view-evaluate');

test('a pasted text too short for the context gets a clear message, and the page stays usable', async () => {
  const tab = page.locator('.tab[data-view="evaluate"]');
  await expect(tab).toBeEnabled();
  await tab.click();
  await view().locator('.source').selectOption('paste');
  await expect(view().locator('.paste')).toBeVisible();
  await view().locator('.paste').fill('To be, or not to be, that is the question.');
  await view().locator('.ctx').selectOption('128');
  await view().locator('.run').click();

  const banner = page.locator('#error-banner');
  await expect(banner).toBeVisible();
  await expect(banner).toContainText(/perplexity at ctx 128 needs at least 256 tokens; the text has \d+/,
    { timeout: 60_000 });
  await expect(view().locator('.eval-status')).toHaveAttribute('data-state', 'error');
  await expect(view().locator('.eval-result')).toBeHidden();
  await page.screenshot({ path: `${SCREENSHOTS}/evaluate-error.png`, fullPage: true });

  // Usable afterwards: controls are back, the model is still loaded, other views still answer.
  await page.locator('#error-banner .error-close').click();
  await expect(banner).toBeHidden();
  await expect(view().locator('.run')).toBeEnabled();
  await expect(view().locator('.source')).toBeEnabled();
  await expect(page.locator('#model-status')).toContainText('loaded');
  await page.locator('.tab[data-view="model"]').click();
  await expect(page.locator('#tensor-table tbody tr')).toHaveCount(272);
});

test('perplexity on Hamlet at ctx 64 over 2 chunks is finite and sensible, with a 2-point chart', async () => {
  test.setTimeout(600_000);
  await page.locator('.tab[data-view="evaluate"]').click();
  await view().locator('.source').selectOption('hamlet_gut.txt');
  await expect(view().locator('.paste')).toBeHidden();
  await view().locator('.ctx').selectOption('64');
  await view().locator('.max-chunks').fill('2');
  await view().locator('.convention').selectOption('llama_cpp');
  await view().locator('.run').click();
  // The progress bar counts chunks (best effort: the first chunk may finish before we look).
  await expect(view().locator('.eval-progress')).toHaveAttribute('data-total', '2', { timeout: 60_000 })
    .catch(() => {});

  const result = view().locator('.eval-result');
  await waitForState(page, result, 'data-ppl', /\d/, 480_000); // SwiftShader: ~1 token/s
  const ppl = Number(await result.getAttribute('data-ppl'));
  const err = Number(await result.getAttribute('data-ppl-err'));
  const ms = Number(await result.getAttribute('data-ms'));
  expect(Number.isFinite(ppl)).toBe(true);
  expect(ppl).toBeGreaterThan(2);
  expect(ppl).toBeLessThan(200);
  expect(err).toBeGreaterThan(0);
  await expect(view().locator('.ppl-value')).toContainText('PPL');
  await expect(view().locator('.ppl-err')).toContainText('±');
  await expect(view().locator('[data-key="chunks"] dd')).toHaveText('2');
  await expect(view().locator('[data-key="tokens"] dd')).toHaveText('62'); // 31 scored tokens per chunk
  await expect(view().locator('.eval-progress')).toBeHidden();

  const points = await view().locator('.ppl-chart').evaluate((el) => Array.from(el._chart.data[1]));
  expect(points).toHaveLength(2);
  expect(points[1]).toBeCloseTo(ppl, 6);
  await expect(view().locator('.ppl-chart canvas')).toBeVisible();

  const line = `PPL ${ppl.toFixed(3)} ± ${err.toFixed(3)} (Hamlet, ctx 64, 2 chunks) in ${ms} ms`;
  test.info().annotations.push({ type: 'perplexity (in page)', description: line });
  console.log(`    perplexity measured in the page: ${line}`);
  await page.screenshot({ path: `${SCREENSHOTS}/evaluate-1280.png`, fullPage: true });
  await page.setViewportSize({ width: 820, height: 1180 });
  await page.screenshot({ path: `${SCREENSHOTS}/evaluate-tablet.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 720 });
});

test('Cancel stops a long perplexity run after the current chunk', async () => {
  await view().locator('.ctx').selectOption('64');
  await view().locator('.max-chunks').fill('0'); // every chunk of Hamlet: far too long to wait for
  await view().locator('.run').click();
  await waitForState(page, view().locator('.eval-progress'), 'data-total', /^\d{2,}$/, 120_000);
  await view().locator('.cancel').click();
  await expect(view().locator('.eval-status')).toHaveAttribute('data-state', 'cancelled', { timeout: 180_000 });
  await expect(view().locator('.eval-status')).toContainText(/Cancelled after \d+ of \d+ chunks/);
  await expect(page.locator('#error-banner')).toBeHidden();
  await expect(view().locator('.run')).toBeEnabled();
});
