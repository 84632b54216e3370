// The /models/ route of the preview server: streams real files with a length, refuses everything else.
import { test, expect } from '@playwright/test';
import { DEFAULT_MODEL } from './fixtures.js';
import { statSync } from 'node:fs';

test('the /models/ route serves cached models and rejects missing files and path traversal', async ({ request }) => {
  const head = await request.head(`/models/${DEFAULT_MODEL}`);
  expect(head.status()).toBe(200);
  expect(Number(head.headers()['content-length'])).toBe(statSync(`.cache/models/${DEFAULT_MODEL}`).size);

  expect((await request.get('/models/no-such-model.gguf')).status()).toBe(404);
  for (const path of ['/models/..%2Fpackage.json', '/models/%2e%2e%2f%2e%2e%2fetc%2fpasswd', '/models/.hidden']) {
    expect((await request.get(path)).status(), path).toBe(400);
  }
});

test('the /texts/ route serves the sample texts and rejects missing files and path traversal', async ({ request }) => {
  const res = await request.get('/texts/hamlet_gut.txt');
  expect(res.status()).toBe(200);
  expect(res.headers()['content-type']).toMatch(/^text\/plain/);
  expect(await res.text()).toContain('HAMLET');
  expect((await request.get('/texts/no-such-text.txt')).status()).toBe(404);
  for (const path of ['/texts/..%2Fmodels%2FSmolLM2-135M-Instruct.Q4_1.gguf', '/texts/%2e%2e%2fpackage.json',
    '/texts/.hidden']) {
    expect((await request.get(path)).status(), path).toBe(400);
  }
});
