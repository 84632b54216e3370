// Export in the page: Q8_0 rounding of the ffn_down matrices (no evaluation, to keep SwiftShader's share short),
// then Download GGUF: the plan lists all 272 tensors as stored; Save streams the file to disk through the File
// System Access API (the save picker answered with a file in the origin's private file system) and, where the
// browser lacks the API, as a Blob download. Both files are GGUF v3 with 272 tensors, of the size the plan
// announced: the source's size plus exactly what Q8_0 adds over Q4_1 on 30 ffn_down matrices (and a little
// metadata). The safetensors plan maps the names to Hugging Face's.
import { statSync, readFileSync } from 'node:fs';
import { test, expect, expectNoConsoleErrors, waitForModel, waitForState, watchConsole, DEFAULT_MODEL,
  SCREENSHOTS } from './fixtures.js';

test.describe.configure({ mode: 'serial' });

const RECIPE = { steps: [{ method: 'rtn', format: 'q8_0', target: 'ffn_down' }] };
const FILE_NAME = 'SmolLM2-135M-Instruct.Q4_1-squeezed.gguf';
// 30 ffn_down matrices of 576 × 1536 go from Q4_1 (20 bytes per 32 weights) to Q8_0 (34 bytes).
const GROWTH = 30 * ((576 * 1536) / 32) * (34 - 20);
const SOURCE_BYTES = statSync(`.cache/models/${DEFAULT_MODEL}`).size;

let page;
let errors;

test.beforeAll(async ({ browser }, testInfo) => {
  const { baseURL, viewport } = testInfo.project.use;
  page = await browser.newPage({ baseURL, viewport, acceptDownloads: true });
  errors = watchConsole(page);
  await page.goto(`/?recipe=${encodeURIComponent(JSON.stringify(RECIPE))}`);
  await waitForModel(page);
});
test.afterEach(() => expectNoConsoleErrors(errors));
test.afterAll(() => page?.close());

const view = () => page.locator('#view-compress');
const panel = () => view().locator('.export-panel');

/** Magic, version and tensor count from the first 24 bytes of a GGUF file. */
function ggufHeader(head) {
  const bytes = Uint8Array.from(head);
  const data = new DataView(bytes.buffer);
  return {
    magic: String.fromCharCode(...bytes.slice(0, 4)),
    version: data.getUint32(4, true),
    tensors: Number(data.getBigUint64(8, true)),
  };
}

/** The exported file is the plan's size, a GGUF v3 of 272 tensors, and holds the Q8_0 matrices. */
function expectGguf(size, head, planned) {
  expect(size).toBe(planned);
  expect(ggufHeader(head)).toEqual({ magic: 'GGUF', version: 3, tensors: 272 });
  // Metadata moves by at most a few kB (the recipe and provenance in, the stale file type out).
  expect(Math.abs(size - (SOURCE_BYTES + GROWTH)), `${size} bytes`).toBeLessThan(4096);
}

test('Q8_0 on ffn_down, then the GGUF plan: all 272 tensors stored as they are', async () => {
  test.setTimeout(600_000);
  await page.locator('.tab[data-view="compress"]').click();
  await expect(view().locator('.step .method')).toHaveValue('rtn');
  await view().locator('.eval-play').selectOption('none');
  await view().locator('.run').click();
  await waitForState(page, view().locator('.compress-result'), 'data-bpw-compressed', /\d/, 540_000);
  expect(Number(await view().locator('.compress-result').getAttribute('data-bpw-compressed'))).toBe(8.5);

  await panel().locator('.export-plan[data-format="gguf"]').click();
  await expect(panel().locator('.export-table tbody tr')).toHaveCount(272);
  await expect(panel()).toHaveAttribute('data-stored', '272');
  await expect(panel()).toHaveAttribute('data-dequantised', '0');
  await expect(panel()).toHaveAttribute('data-file-name', FILE_NAME);
  await expect(panel().locator('tr[data-name="blk.0.ffn_down.weight"]')).toContainText('Q8_0');
  await expect(panel().locator('tr[data-name="blk.0.ffn_up.weight"]')).toContainText('Q4_1');
  await expect(panel().locator('.export-notes')).toContainText('general.file_type');
  await panel().scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${SCREENSHOTS}/export-plan-1280.png`, fullPage: true });
});

test('Save streams the file to disk through the File System Access API', async () => {
  test.setTimeout(300_000);
  // The picker answers with a file of the origin's private file system, which headless Chromium can write.
  await page.evaluate(() => {
    window.showSaveFilePicker = async ({ suggestedName }) => {
      window.savedAs = suggestedName;
      const dir = await navigator.storage.getDirectory();
      return dir.getFileHandle('export.gguf', { create: true });
    };
  });
  const planned = Number(await panel().getAttribute('data-bytes'));
  const t0 = Date.now();
  await panel().locator('.export-save').click();
  await waitForState(page, panel().locator('.export-status'), 'data-state', /^done$/, 280_000);
  const seconds = (Date.now() - t0) / 1000;
  const saved = await page.evaluate(async () => {
    const dir = await navigator.storage.getDirectory();
    const file = await (await dir.getFileHandle('export.gguf')).getFile();
    const head = Array.from(new Uint8Array(await file.slice(0, 24).arrayBuffer()));
    await dir.removeEntry('export.gguf');
    return { size: file.size, head, name: window.savedAs };
  });
  expect(saved.name).toBe(FILE_NAME);
  expectGguf(saved.size, saved.head, planned);
  await expect(panel()).toHaveAttribute('data-saved-bytes', String(planned));
  await expect(panel().locator('.export-progress')).toBeHidden();
  console.log(`    streamed ${FILE_NAME} (${planned} bytes) to disk in ${seconds.toFixed(1)} s`);
});

test('without the API the same file comes as a download', async () => {
  test.setTimeout(300_000);
  await page.evaluate(() => {
    window.showSaveFilePicker = undefined;
  });
  const planned = Number(await panel().getAttribute('data-bytes'));
  const download = page.waitForEvent('download', { timeout: 280_000 });
  await panel().locator('.export-save').click();
  const file = await download;
  expect(file.suggestedFilename()).toBe(FILE_NAME);
  const path = await file.path();
  expectGguf(statSync(path).size, Array.from(readFileSync(path).subarray(0, 24)), planned);
  await expect(panel().locator('.export-status')).toHaveAttribute('data-state', 'done');
});

test('the safetensors plan takes Hugging Face names and puts the q/k rows back in their order', async () => {
  await panel().locator('.export-plan[data-format="safetensors"]').click();
  await expect(panel()).toHaveAttribute('data-format', 'safetensors');
  const q = panel().locator('tr[data-name="blk.0.attn_q.weight"]');
  await expect(q).toContainText('model.layers.0.self_attn.q_proj.weight');
  await expect(q).toContainText('rotary');
  await expect(panel().locator('tr[data-name="token_embd.weight"]')).toContainText('model.embed_tokens.weight');
  await expect(panel().locator('.export-notes')).toContainText('tokenizer.json and tokenizer_config.json built from');
  await expect(panel()).toHaveAttribute('data-dequantised', '0');
});
