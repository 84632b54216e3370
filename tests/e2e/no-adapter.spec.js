// navigator.gpu exists but no adapter is granted: the worker's Squeeze.create() fails, and the page explains.
import { test, expectExplanation } from './fixtures.js';
import config from '../../playwright.config.js';

// Chromium on Linux offers no WebGPU adapter unless --enable-unsafe-webgpu is given.
const { launchOptions } = config.use;
const args = launchOptions.args.filter((a) => a !== '--enable-unsafe-webgpu');
test.use({ launchOptions: { ...launchOptions, args } });

test('with navigator.gpu but no adapter the page explains WebGPU', async ({ page, consoleErrors }) => {
  await page.goto('/');
  await expectExplanation(page, 'adapter');
});
