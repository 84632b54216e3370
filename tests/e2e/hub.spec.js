// Loading from the hub, against a local server with the hub's URL layout (hub-server.js) named by the page's
// ?hub= parameter: a repo id loads a sharded safetensors model with a progress row per file and keeps the
// files in the browser's cache (a reload of the shared link reads them from there, without a request); a
// file's full address follows a redirect and downloads without Content-Length; a repo that is not a model gets
// a message naming it; Clear cache empties the cache. One page (one browser context, so one cache).
import { statSync } from 'node:fs';
import { test, expect, expectNoConsoleErrors, waitForModel, watchConsole, SCREENSHOTS } from './fixtures.js';
import { GGUF_FILE, GGUF_REPO, startHubServer, TINY, TINY_REPO } from './hub-server.js';

test.describe.configure({ mode: 'serial' });

let hub;
let context;
let page;
let errors;

test.beforeAll(async ({ browser }, testInfo) => {
  hub = await startHubServer();
  const { baseURL, viewport } = testInfo.project.use;
  context = await browser.newContext({ baseURL, viewport });
  page = await context.newPage();
  errors = watchConsole(page);
});
test.afterEach(() => expectNoConsoleErrors(errors, [/404 \(Not Found\)/]));
test.afterAll(async () => {
  await context?.close();
  await hub?.close();
});

const files = () => page.locator('#file-progress li');
const fact = (key) => page.locator(`#view-model .facts [data-key="${key}"] dd`);
const SHARDS = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];

test('a repo id loads its sharded safetensors model with progress per file, into the cache', async () => {
  await page.goto(`/?autoload=0&hub=${encodeURIComponent(hub.origin)}`);
  await expect(page.locator('#model-status')).toHaveText('No model loaded.');
  await page.locator('#hub-source').fill(TINY_REPO);
  await page.locator('#hub-load').click();
  await waitForModel(page);

  await expect(files()).toHaveCount(5);
  const rows = await files().evaluateAll((lis) => lis.map((li) => ({ ...li.dataset })));
  expect(rows.map((r) => r.name)).toEqual(['config.json', 'tokenizer.json', 'model.safetensors.index.json',
    ...SHARDS]);
  for (const r of rows) {
    expect(r.state).toBe('done');
    expect(Number(r.done)).toBe(hub.tinyFiles.get(r.name).length);
    expect(Number(r.total)).toBe(hub.tinyFiles.get(r.name).length);
  }
  await expect(files().nth(3)).toContainText('cached');
  await expect(fact('n_layers')).toHaveText(String(TINY.layers));
  await expect(fact('tensor_count')).toHaveText(String(1 + 9 * TINY.layers + 1));
  await expect(page.locator('#tensor-table tbody tr')).toHaveCount(1 + 9 * TINY.layers + 1);
  await expect(page.locator('#cache-line')).toHaveAttribute('data-files', '5');
  for (const shard of SHARDS) expect(hub.requests.get(`/${TINY_REPO}/resolve/main/${shard}`)).toBe(1);

  const url = new URL(page.url());
  expect(url.searchParams.get('model')).toBe(`hf:${TINY_REPO}`);
  expect(url.searchParams.get('hub')).toBe(hub.origin);
  await page.screenshot({ path: `${SCREENSHOTS}/hub-sharded.png`, fullPage: true });
});

test('opening the shared link loads the same model again from the cache, without a request', async () => {
  const before = new Map(hub.requests);
  await page.goto(`/?model=${encodeURIComponent(`hf:${TINY_REPO}`)}&hub=${encodeURIComponent(hub.origin)}`);
  await waitForModel(page);
  await expect(fact('tensor_count')).toHaveText(String(1 + 9 * TINY.layers + 1));
  const states = await files().evaluateAll((lis) => lis.map((li) => li.dataset.state));
  expect(states).toEqual(['cached', 'cached', 'cached', 'cached', 'cached']);
  await expect(files().nth(4)).toContainText('from the cache');
  expect(hub.requests).toEqual(before);
});

test('a file address follows the redirect and downloads without Content-Length; Clear cache empties it', async () => {
  test.setTimeout(300_000);
  const size = statSync(`.cache/models/${GGUF_FILE}`).size;
  await page.evaluate(() => {
    window.__states = [];
    new MutationObserver(() => {
      const li = document.querySelector('#file-progress li');
      if (li) window.__states.push([li.dataset.state, Number(li.dataset.done), Number(li.dataset.total)]);
    }).observe(document.querySelector('#file-progress'), { subtree: true, attributes: true, childList: true });
  });
  await page.locator('#hub-source').fill(`${hub.origin}/${GGUF_REPO}/resolve/main/${GGUF_FILE}`);
  await page.locator('#hub-load').click();
  await waitForModel(page);
  await expect(fact('tensor_count')).toHaveText('272');
  expect(hub.requests.get(`/${GGUF_REPO}/resolve/main/${GGUF_FILE}`)).toBe(1);
  expect(hub.requests.get(`/cdn/0123abcd/${GGUF_FILE}`)).toBe(1);
  const states = await page.evaluate(() => window.__states);
  const downloading = states.filter(([s]) => s === 'downloading');
  expect(downloading.length).toBeGreaterThan(2);
  expect(downloading.every(([, , total]) => total === 0)).toBe(true); // no length: an open-ended bar
  const done = downloading.map(([, d]) => d);
  expect(done).toEqual([...done].sort((a, b) => a - b));
  expect(states.at(-1)).toEqual(['done', size, size]);
  await expect(files().first()).toContainText(/downloading|done/);
  expect(new URL(page.url()).searchParams.get('model')).toBe(`hf:${GGUF_REPO}/${GGUF_FILE}`);
  await expect(page.locator('#cache-line')).toHaveAttribute('data-files', '6');
  expect(Number(await page.locator('#cache-line').getAttribute('data-bytes'))).toBeGreaterThan(size);

  await page.locator('#clear-cache').click();
  await expect(page.locator('#cache-line')).toHaveAttribute('data-files', '0');
  await expect(page.locator('#clear-cache')).toBeDisabled();
});

test('a repo that is not a model, and a bad id, get a message; the loaded model stays', async () => {
  await page.locator('#hub-source').fill('local/no-such-repo');
  await page.locator('#hub-load').click();
  await expect(page.locator('#error-banner')).toContainText('local/no-such-repo has no config.json');
  await page.locator('#error-banner .error-close').click();
  await page.locator('#hub-source').fill('not a repo');
  await page.locator('#hub-load').click();
  await expect(page.locator('#error-banner')).toContainText('neither a Hugging Face repo id');
  await expect(fact('tensor_count')).toHaveText('272');
});
