// Shared test setup: every page's console errors are collected and fail the test unless a test expects them.
import { test as base, expect } from '@playwright/test';

export const DEFAULT_MODEL = 'SmolLM2-135M-Instruct.Q4_1.gguf';
export const SCREENSHOTS = 'test-results/screenshots';

/** Attaches console/page-error collection to a page; returns the list it fills. */
export function watchConsole(page) {
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console.error: ${msg.text()}`);
    if (msg.text().startsWith('[squeeze]')) console.log(`    page: ${msg.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
  return errors;
}

export function expectNoConsoleErrors(errors, allowed = []) {
  const unexpected = errors.filter((e) => !allowed.some((re) => re.test(e)));
  expect(unexpected, 'unexpected console errors').toEqual([]);
}

export const test = base.extend({
  consoleErrors: async ({ page }, use) => {
    const errors = watchConsole(page);
    await use(errors);
    expectNoConsoleErrors(errors);
  },
});

/** Waits for a model load to finish and returns the load time the page measured, in ms. */
export async function waitForModel(page) {
  await expect(page.locator('#model-status')).toHaveAttribute('data-load-ms', /\d+/);
  await expect(page.locator('#progress')).toBeHidden();
  return Number(await page.locator('#model-status').getAttribute('data-load-ms'));
}

/**
 * Waits until the Weights view shows statistics for `name`, failing at once with the page's message if an
 * error banner appears instead (a GPU kernel failure, say) rather than after the whole timeout.
 */
export async function waitForStats(page, name) {
  const shown = page.locator(`.stats-table[data-name="${name}"]`);
  const banner = page.locator('#error-banner');
  await Promise.race([shown.waitFor().catch(() => {}), banner.waitFor().catch(() => {})]);
  if (await banner.isVisible()) {
    throw new Error(`the page shows an error: ${await banner.locator('.error-text').textContent()}`);
  }
}

/** Counts the pixels of a canvas inside `selector` that are close to the given colour. */
export function countPixels(page, selector, [r, g, b], tolerance = 40) {
  return page.locator(`${selector} canvas`).evaluate((canvas, [r, g, b, tol]) => {
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      const close = Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < tol;
      if (data[i + 3] > 200 && close) n++;
    }
    return n;
  }, [r, g, b, tolerance]);
}

/** The numbers a Statistics row shows, read from its raw data-value. */
export async function statValue(page, key) {
  return Number(await page.locator(`.stats-table [data-stat="${key}"]`).getAttribute('data-value'));
}

/** The no-WebGPU panel is shown with `reason` in it, and nothing else is offered. */
export async function expectExplanation(page, reason) {
  const panel = page.locator('#no-webgpu');
  await expect(panel).toBeVisible();
  await expect(panel).toContainText('WebGPU');
  await expect(panel).toContainText('Nothing was uploaded anywhere');
  await expect(panel.locator('.reason')).toContainText(reason);
  await expect(page.locator('#loader')).toBeHidden();
  await expect(page.locator('#gpu-badge')).toHaveText('no WebGPU');
  await expect(page.locator('#error-banner')).toBeHidden();
}

export { expect };


/** A page of its own that has loaded the default model, for a serial group of tests to share. */
export async function openWithModel(browser, testInfo) {
  const { baseURL, viewport } = testInfo.project.use;
  const page = await browser.newPage({ baseURL, viewport });
  const errors = watchConsole(page);
  await page.goto('/');
  await waitForModel(page);
  return { page, errors };
}

/**
 * One page with the default model loaded, shared by the tests of a serial spec: `onOpen(page)` gets it
 * before the first test; console errors fail the test in which they appear.
 */
export function sharePage(onOpen) {
  let shared = null;
  test.describe.configure({ mode: 'serial' });
  test.beforeAll(async ({ browser }, testInfo) => {
    shared = await openWithModel(browser, testInfo);
    await onOpen(shared.page);
  });
  test.afterEach(() => shared && expectNoConsoleErrors(shared.errors));
  test.afterAll(() => shared?.page.close());
}

/**
 * Waits until `locator` matches `state` (an attribute value), failing at once with the page's message if the
 * error banner appears first.
 */
export async function waitForState(page, locator, attr, pattern, timeout = 240_000) {
  const banner = page.locator('#error-banner');
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const value = await locator.getAttribute(attr);
    if (pattern.test(value ?? '')) return value;
    if (await banner.isVisible()) {
      throw new Error(`the page shows an error: ${await banner.locator('.error-text').textContent()}`);
    }
    await page.waitForTimeout(100);
  }
  throw new Error(`timed out waiting for ${attr} ~ ${pattern}; last value ${await locator.getAttribute(attr)}`);
}
