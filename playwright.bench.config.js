// `npm run bench:page`: the page's benchmark, with the test configuration's browser and server.
import { defineConfig } from '@playwright/test';
import config from './playwright.config.js';

export default defineConfig({ ...config, testDir: 'bench', testMatch: '*.bench.js', outputDir: 'test-results/bench' });
