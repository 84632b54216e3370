// Teaching and reach: the guided tour walks histogram → quantise → error → perplexity → trade-off, from the
// keyboard, outlining what each step talks about, and once closed it is not offered again; every view fits a
// tablet's width without sideways scrolling, and the new tabs are reachable by keyboard.
import { test, expect, waitForModel, SCREENSHOTS, sharePage } from './fixtures.js';

let page;
sharePage((opened) => (page = opened));

const STEPS = [
  ['weights', '#view-weights .hist-chart', 'The weights'],
  ['compress', '#view-compress .recipe-form', 'Quantise'],
  ['compress', '#view-compress .compress-run', 'The error'], // nothing compressed yet: the run card
  ['compress', '#view-compress .compress-run', 'Perplexity and KL divergence'],
  ['experiments', '#view-experiments .tradeoff', 'The trade-off'],
];

test('the tour walks five steps by keyboard, outlining each, and is not offered again once closed', async () => {
  const offer = page.locator('#tour-offer');
  await expect(offer).toBeVisible();
  await offer.locator('.tour-go').click();
  const card = page.locator('.tour-card');
  for (const [i, [view, target, title]] of STEPS.entries()) {
    await expect(card).toHaveAttribute('data-step', String(i + 1));
    await expect(card.locator('.tour-title')).toHaveText(title);
    await expect(page.locator(`.tab[data-view="${view}"]`)).toHaveAttribute('aria-current', 'page');
    await expect(page.locator('.tour-target')).toHaveCount(1);
    expect(await page.locator(target).evaluate((el) => el.classList.contains('tour-target'))).toBe(true);
    if (i === 1) await page.screenshot({ path: `${SCREENSHOTS}/tour-step-2.png` });
    await expect(card.locator('.tour-next')).toBeFocused();
    if (i < STEPS.length - 1) await page.keyboard.press('Enter'); // Next
  }
  await expect(card.locator('.tour-next')).toHaveText('Done');
  await card.locator('.tour-back').click();
  await expect(card).toHaveAttribute('data-step', '4');
  await page.keyboard.press('Escape');
  await expect(card).toBeHidden();
  await expect(page.locator('.tour-target')).toHaveCount(0);
  await expect(offer).toBeHidden();

  await page.reload();
  await waitForModel(page);
  await expect(offer).toBeHidden();
  await page.locator('#tour-start').click(); // still there on demand
  await expect(card).toHaveAttribute('data-step', '1');
  await card.locator('.tour-close').click();
});

test('every view fits a tablet (820 px) and 1280 × 720 without sideways scrolling', async () => {
  for (const width of [820, 1280]) {
    await page.setViewportSize({ width, height: width === 820 ? 1180 : 720 });
    for (const view of ['model', 'weights', 'generate', 'compress', 'evaluate', 'experiments', 'explorer']) {
      await page.locator(`.tab[data-view="${view}"]`).click();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, `${view} at ${width} px`).toBeLessThanOrEqual(0);
      if (['experiments', 'explorer', 'compress'].includes(view)) {
        await page.screenshot({ path: `${SCREENSHOTS}/${view}-${width === 820 ? 'tablet' : '1280'}.png`,
          fullPage: true });
      }
    }
  }
});

test('the tabs and the hub form work from the keyboard', async () => {
  await page.locator('.tab[data-view="model"]').focus();
  for (let i = 0; i < 5; i++) await page.keyboard.press('Tab');
  await expect(page.locator('.tab[data-view="experiments"]')).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.locator('.tab[data-view="experiments"]')).toHaveAttribute('aria-current', 'page');
  await page.keyboard.press('Tab');
  await expect(page.locator('.tab[data-view="explorer"]')).toBeFocused();
  await page.keyboard.press('Space');
  await expect(page.locator('#view-explorer')).toBeVisible();
  await page.locator('#hub-source').focus();
  await page.keyboard.type('no slash here');
  await page.keyboard.press('Enter'); // submits the form
  await expect(page.locator('#error-banner')).toContainText('neither a Hugging Face repo id');
  await page.locator('#error-banner .error-close').click();
});
