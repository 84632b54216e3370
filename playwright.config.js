import { defineConfig } from '@playwright/test';

// A fixed port of its own, so the tests never talk to a dev server someone left running on 5173.
const PORT = 4317;

export default defineConfig({
  testDir: 'tests/e2e',
  outputDir: 'test-results',
  // WebGPU here is SwiftShader, a CPU: downloading + uploading 98 MB and running kernels takes tens of seconds.
  timeout: 300_000,
  expect: { timeout: 180_000 },
  // One software GPU on a small machine: run the tests one after another.
  workers: 1,
  fullyParallel: false,
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${PORT}`,
    headless: true,
    viewport: { width: 1280, height: 720 },
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--enable-unsafe-webgpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    },
  },
  webServer: {
    command: 'npx vite preview --config vite.config.js',
    env: { PORT: String(PORT) },
    url: `http://127.0.0.1:${PORT}/`,
    reuseExistingServer: !process.env.CI,
    timeout: 60_000,
  },
});
