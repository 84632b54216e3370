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
