// Drives the web inbox in headless Chromium for tests/tests/inbox.rs.
//
// Env: INBOX_URL (the host's base URL), INBOX_TOKEN (an agent token),
// INBOX_REPLY (the text to type), CHROMIUM (the browser binary),
// SCREENSHOT (where to save the final screenshot), INBOX_SCENARIO:
//
// - `private-reply` (default): the case appears live, is opened with the
//   keyboard and claimed, and gets a private reply that shows as sent;
// - `retry`: the case gets a public reply that the channel refuses; the
//   page shows the API's error and a failed action, whose Retry button
//   sends it.
//
// Protocol on stdout, one word a line: READY once the queue is shown and
// live, then (after the test delivered a comment) DONE once the scenario
// is through. Anything else goes to stderr. Exits non-zero on any failure,
// including errors the page shows or logs that the scenario does not
// expect.

import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const base = env('INBOX_URL');
const token = env('INBOX_TOKEN');
const replyText = env('INBOX_REPLY');
const executablePath = env('CHROMIUM');
const screenshot = env('SCREENSHOT');
const scenario = process.env.INBOX_SCENARIO || 'private-reply';
const STEP_MS = 20_000;

const log = (...args) => console.error('[inbox.mjs]', ...args);

const userDataDir = await mkdtemp(join(tmpdir(), 'webcare-inbox-chromium-'));
let context;
const pageErrors = [];
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_MS);
  page.on('console', (m) => {
    log(`console.${m.type()}: ${m.text()}`);
    // The page logs the errors it shows; a scenario that expects one
    // checks what is shown.
    const expected = m.text().startsWith('ApiError')
      || (scenario === 'retry' && m.text().includes('status of 502'));
    if (m.type() === 'error' && !expected) pageErrors.push(m.text());
  });
  page.on('pageerror', (e) => {
    log(`page error: ${e.message}`);
    pageErrors.push(e.message);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) log(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
  });
  let navigations = 0;
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations += 1;
  });

  // Log in: paste the token.
  const response = await page.goto(`${base}/inbox/`);
  const csp = response.headers()['content-security-policy'] ?? '';
  if (!csp.startsWith("default-src 'self'")) throw new Error(`no strict CSP: ${csp}`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#desk-view').waitFor({ state: 'visible' });
  await page.locator('#queue-summary').filter({ hasText: 'No cases' }).waitFor();
  await page.locator('#live[data-state="live"]').waitFor();
  const navigationsAtReady = navigations;
  console.log('READY');

  // The comment arrives: the case shows up without a reload.
  const item = page.locator('#queue li.queue-item').first();
  await item.waitFor({ state: 'visible', timeout: 30_000 });
  log(`queue item: ${(await item.innerText()).replace(/\s+/g, ' ')}`);
  if (navigations !== navigationsAtReady) throw new Error('the page reloaded');
  const announced = await page.locator('#announcer').innerText();
  if (!announced.includes('New case')) throw new Error(`no live announcement: ${announced}`);

  if (scenario === 'private-reply') {
    await privateReply(page);
  } else if (scenario === 'retry') {
    await failedReplyRetried(page);
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  if (pageErrors.length) throw new Error(`the page logged errors: ${pageErrors.join('; ')}`);

  await mkdir(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log('DONE');
} catch (e) {
  log(`failed: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
}

/** Opens the case with the keyboard, claims it, answers in private. */
async function privateReply(page) {
  await page.locator('#queue').focus();
  await page.keyboard.press('j');
  await page.keyboard.press('Enter');
  await page.locator('#case-body').waitFor({ state: 'visible' });
  await page.locator('#conversation li.inbound').first().waitFor();
  await page.keyboard.press('c');
  await page.locator('#case-status', { hasText: 'open' }).waitFor();
  await page.locator('#case-assignee', { hasText: 'owner' }).waitFor();

  // r focuses the reply box; the toggle makes it private.
  await page.keyboard.press('r');
  const box = page.getByLabel('Reply text');
  if (!(await box.evaluate((el) => el === document.activeElement))) {
    throw new Error('r did not focus the reply box');
  }
  await page.getByLabel('Private reply (DM / private message)').check();
  await box.pressSequentially(replyText, { delay: 5 });
  // A double click sends once (one idempotency key per draft).
  await page.getByRole('button', { name: 'Send reply (Ctrl+Enter)' }).dblclick();
  await page.locator('#actions li[data-state="sent"]').filter({ hasText: 'private reply' }).first().waitFor();
  const actions = await page.locator('#actions li[data-action-id]').count();
  if (actions !== 1) throw new Error(`expected one action, the list shows ${actions}`);
  await page.locator('#case-status', { hasText: 'pending' }).waitFor();
  await page.locator('#queue li[data-status="pending"]').waitFor();

  // The crisis the test raised shows as a banner, with the message.
  const banner = page.locator('#alert-banner');
  await banner.filter({ hasText: 'Crisis alert' }).waitFor({ timeout: 30_000 });
  log(`banner: ${(await banner.innerText()).replace(/\s+/g, ' ')}`);
  // The report: figures per channel and the charts.
  await page.getByRole('button', { name: 'Report (g)' }).click();
  await page.locator('#report-view svg rect').first().waitFor();
  const report = await page.locator('#report-body table').innerText();
  if (!/all channels\s+1\s+1\s+100 %/.test(report)) throw new Error(`unexpected report: ${report}`);
  const shown = await page.locator('#errors').innerText();
  if (shown.trim()) throw new Error(`the page shows errors: ${shown}`);
}

/** A public reply the channel refuses, shown as such, then retried. */
async function failedReplyRetried(page) {
  await page.locator('#queue li.queue-item').first().click();
  await page.locator('#case-body').waitFor({ state: 'visible' });
  await page.keyboard.press('r');
  await page.keyboard.type(replyText);
  await page.keyboard.press('Control+Enter');
  const failed = page.locator('#actions li[data-state="failed"]');
  await failed.waitFor();
  const error = await page.locator('#errors .error').first().innerText();
  if (!error.includes('the channel did not take it')) {
    throw new Error(`the API's error is not shown: ${error}`);
  }
  await page.getByRole('button', { name: 'Dismiss this error' }).click();
  await failed.getByRole('button', { name: /^Retry action/ }).click();
  await page.locator('#actions li[data-state="sent"]').filter({ hasText: 'public reply' }).waitFor();
  await page.locator('#actions li', { hasText: '2 attempts' }).waitFor();
  const shown = await page.locator('#errors').innerText();
  if (shown.trim()) throw new Error(`the page shows errors: ${shown}`);
}
