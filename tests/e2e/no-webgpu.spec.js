// Without WebGPU the page explains what is missing instead of failing, and loads nothing.
import { test, expect, expectExplanation, SCREENSHOTS } from './fixtures.js';

test('without navigator.gpu the page explains WebGPU and loads nothing', async ({ page, consoleErrors }) => {
  await page.addInitScript(() => Object.defineProperty(navigator, 'gpu', { value: undefined }));
  const modelRequests = [];
  page.on('request', (req) => req.url().includes('/models/') && modelRequests.push(req.url()));
  await page.goto('/');
  await expectExplanation(page, 'navigator.gpu');
  expect(modelRequests).toEqual([]);
  await page.screenshot({ path: `${SCREENSHOTS}/no-webgpu.png`, fullPage: true });
});
