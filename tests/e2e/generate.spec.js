// The Generate view: greedy text streams in token by token with a live speed and a summary, and Stop ends a
// long generation promptly. The tests share one page so the model is loaded once.
import { test, expect, waitForState, SCREENSHOTS, sharePage } from './fixtures.js';

let page;
sharePage((opened) => (page = opened));

const output = () => page.locator('.gen-output');
const summary = (key) => page.locator(`.gen-summary [data-key="${key}"]`);

/** Records the output's text length every time it changes while the generation runs. */
function recordLengths() {
  return page.evaluate(() => {
    const el = document.querySelector('.gen-output');
    window.__lengths = [];
    window.__observer?.disconnect();
    window.__observer = new MutationObserver(() => {
      if (el.dataset.state === 'running') window.__lengths.push(el.textContent.length);
    });
    window.__observer.observe(el, { childList: true, characterData: true, subtree: true });
  });
}

test('greedy generation with the chat template streams text, then shows the speeds', async () => {
  const tab = page.locator('.tab[data-view="generate"]');
  await expect(tab).toBeEnabled();
  await tab.click();
  const view = page.locator('#view-generate');
  await expect(view.locator('.chat')).toBeChecked(); // an instruct model: chat on by default
  await expect(view.locator('.chat-note')).toContainText('<|im_start|>user');
  await view.locator('.greedy').check();
  await expect(view.locator('.temperature')).toBeDisabled();
  await view.locator('.max_tokens').fill('16');
  await view.locator('.prompt').fill('What is the capital of France?');
  await recordLengths();

  // Keyboard path: Ctrl+Enter in the prompt generates.
  await view.locator('.prompt').press('Control+Enter');
  await waitForState(page, output(), 'data-state', /^done$/);

  const lengths = await page.evaluate(() => window.__lengths);
  const distinct = new Set(lengths.filter((n) => n > 0));
  expect(distinct.size, `output lengths seen while decoding: ${lengths.join(', ')}`).toBeGreaterThanOrEqual(2);
  const text = await output().textContent();
  expect(text.trim().length).toBeGreaterThan(0);
  const tokens = Number(await summary('tokens').getAttribute('data-value'));
  expect(tokens).toBeGreaterThan(0);
  expect(tokens).toBeLessThanOrEqual(16);
  expect(['max_tokens', 'end_of_text']).toContain(await summary('stop').getAttribute('data-value'));
  expect(Number(await summary('prompt_tokens').getAttribute('data-value'))).toBeGreaterThan(7); // template added
  const decode = Number(await summary('decode_tokens_per_s').getAttribute('data-value'));
  const prefill = Number(await summary('prefill_tokens_per_s').getAttribute('data-value'));
  expect(decode).toBeGreaterThan(0);
  expect(prefill).toBeGreaterThan(0);
  await expect(view.locator('.run')).toBeEnabled();

  const line = `${decode.toFixed(2)} tok/s decode, ${prefill.toFixed(1)} tok/s prefill (${tokens} tokens: ` +
    `${JSON.stringify(text)})`;
  test.info().annotations.push({ type: 'decode tokens/s (in page)', description: line });
  console.log(`    generation speed measured in the page: ${line}`);
  await page.screenshot({ path: `${SCREENSHOTS}/generate-1280.png`, fullPage: true });
  await page.setViewportSize({ width: 820, height: 1180 });
  await page.screenshot({ path: `${SCREENSHOTS}/generate-tablet.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 720 });
});

test('Stop ends a 200-token generation within a few seconds, with stop reason cancelled', async () => {
  const view = page.locator('#view-generate');
  await view.locator('.max_tokens').fill('200');
  await view.locator('.prompt').fill('Write a long story about a dragon who learns to cook.');
  await view.locator('.run').click();
  // Wait until it is decoding (two tokens out), then stop.
  await waitForState(page, output(), 'data-tokens', /^([2-9]|\d\d+)$/);
  const t0 = Date.now();
  await view.locator('.stop').click();
  await waitForState(page, output(), 'data-state', /^cancelled$/, 30_000);
  const stopMs = Date.now() - t0;
  expect(stopMs).toBeLessThan(10_000);
  await expect(summary('stop')).toHaveAttribute('data-value', 'cancelled');
  await expect(summary('stop')).toContainText('cancelled');
  const tokens = Number(await summary('tokens').getAttribute('data-value'));
  expect(tokens).toBeGreaterThanOrEqual(2);
  expect(tokens).toBeLessThan(200);
  await expect(view.locator('.run')).toBeEnabled();
  await expect(view.locator('.stop')).toBeDisabled();
  test.info().annotations.push({ type: 'stop latency', description: `${stopMs} ms after ${tokens} tokens` });
  console.log(`    stop took ${stopMs} ms (generation ended after ${tokens} tokens)`);
  await page.screenshot({ path: `${SCREENSHOTS}/generate-stopped.png`, fullPage: true });
});
