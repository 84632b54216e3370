// Bad files give a clear message that names the file, and the page stays usable afterwards.
import { test, expect, waitForModel, waitForStats, statValue, SCREENSHOTS, DEFAULT_MODEL } from './fixtures.js';

function brokenGguf() {
  const buf = Buffer.alloc(100);
  buf.write('GGUF', 0, 'latin1');
  buf.writeUInt32LE(3, 4); // version
  buf.writeBigUInt64LE(1n << 60n, 8); // tensor count no 100-byte file can hold
  buf.writeBigUInt64LE(0n, 16); // metadata count
  return { name: 'broken.gguf', mimeType: 'application/octet-stream', buffer: buf };
}

function zipNamedGguf() {
  const buf = Buffer.alloc(100);
  buf.write('PK\u0003\u0004', 0, 'latin1');
  return { name: 'notgguf.gguf', mimeType: 'application/octet-stream', buffer: buf };
}

test('bad files show an error naming the file, then the default model still loads and works',
  async ({ page, consoleErrors }) => {
    await page.goto('/?autoload=0');
    await expect(page.locator('#load-default')).toBeEnabled();
    await expect(page.locator('#model-status')).toHaveText('No model loaded.');
    const banner = page.locator('#error-banner');

    await page.locator('#file-input').setInputFiles(brokenGguf());
    await expect(banner).toBeVisible();
    await expect(banner).toContainText('broken.gguf');
    await expect(banner).toContainText(/tensor count/i);
    await page.screenshot({ path: `${SCREENSHOTS}/error-broken-gguf.png` });

    await page.locator('#file-input').setInputFiles(zipNamedGguf());
    await expect(banner).toContainText('notgguf.gguf');
    await expect(banner).toContainText(/GGUF|magic/);
    await expect(page.locator('#model-status')).toHaveText('No model loaded.');

    // The same through drag and drop onto the page.
    await page.locator('#error-banner .error-close').click();
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array([0x50, 0x4b, 3, 4, ...new Array(96).fill(0)])], 'dropped.gguf'));
      for (const type of ['dragenter', 'dragover', 'drop']) {
        window.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
      }
    });
    await expect(banner).toContainText('dropped.gguf');
    await expect(page.locator('#drop-overlay')).toBeHidden();

    await page.locator('#error-banner .error-close').click();
    await expect(banner).toBeHidden();

    await page.locator('#load-default').click();
    await waitForModel(page);
    await expect(page.locator('#tensor-table tbody tr')).toHaveCount(272);

    // A bad file after a good model: the error shows and the loaded model keeps working.
    await page.locator('#file-input').setInputFiles(brokenGguf());
    await expect(banner).toContainText('broken.gguf');
    await expect(page.locator('#tensor-table tbody tr')).toHaveCount(272);
    await page.locator('#error-banner .error-close').click();
    await page.locator('#tensor-table tr[data-name="blk.1.ffn_down.weight"]').click();
    await waitForStats(page, 'blk.1.ffn_down.weight');
    await expect(page.locator('.stats-table [data-stat="n"]')).toHaveAttribute('data-value', String(576 * 1536));
    expect(Number.isFinite(await statValue(page, 'std'))).toBe(true);
  });

test('a lost GPU device is replaced: the model is opened again and the page keeps working',
  async ({ page, consoleErrors }) => {
    await page.goto('/');
    await waitForModel(page);
    await page.locator('#tensor-table tr[data-name="blk.0.attn_k.weight"]').click();
    await waitForStats(page, 'blk.0.attn_k.weight');

    // Destroy the device as a driver reset would (the worker's own loseDevice request).
    const [worker] = page.workers();
    await worker.evaluate(() => self.onmessage({ data: { id: -1, op: 'loseDevice', args: {} } }));
    await page.waitForTimeout(500); // the browser reports the loss asynchronously

    await page.locator('.tab[data-view="model"]').click();
    await page.locator('#tensor-table tr[data-name="blk.2.ffn_up.weight"]').click();
    const banner = page.locator('#error-banner');
    await expect(banner).toContainText('GPU device was lost');
    await expect(banner).toContainText(`loaded ${DEFAULT_MODEL} again`);
    await page.screenshot({ path: `${SCREENSHOTS}/error-device-lost.png` });
    // The request that met the lost device ran on the new one.
    await expect(page.locator('.stats-table[data-name="blk.2.ffn_up.weight"]')).toBeVisible();
    await expect(page.locator('.stats-table [data-stat="n"]')).toHaveAttribute('data-value', String(576 * 1536));
    expect(Number.isFinite(await statValue(page, 'std'))).toBe(true);
  });
