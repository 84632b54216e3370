// Without WebGPU the page explains what is missing instead of failing.
import { test, expect, SCREENSHOTS } from './fixtures.js';

test('without navigator.gpu the page explains WebGPU and loads nothing', async ({ page, consoleErrors }) => {
  await page.addInitScript(() => Object.defineProperty(navigator, 'gpu', { value: undefined }));
  const modelRequests = [];
  page.on('request', (req) => req.url().includes('/models/') && modelRequests.push(req.url()));
  await page.goto('/');

  const panel = page.locator('#no-webgpu');
  await expect(panel).toBeVisible();
  await expect(panel).toContainText('WebGPU');
  await expect(panel).toContainText('Nothing was uploaded anywhere');
  await expect(panel.locator('.reason')).toContainText('navigator.gpu');
  await expect(page.locator('#loader')).toBeHidden();
  await expect(page.locator('#gpu-badge')).toHaveText('no WebGPU');
  expect(modelRequests).toEqual([]);
  await page.screenshot({ path: `${SCREENSHOTS}/no-webgpu.png`, fullPage: true });
});
