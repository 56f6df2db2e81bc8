// Drives the web inbox in headless Chromium for tests/tests/inbox.rs.
//
// Env: INBOX_URL (the host's base URL), INBOX_TOKEN (an agent token),
// INBOX_REPLY (the text to type), CHROMIUM (the browser binary),
// SCREENSHOT (where to save the final screenshot).
//
// Protocol on stdout, one word a line: READY once the queue is shown and
// live, then (after the test delivered a comment) DONE once the private
// reply shows as sent. Anything else goes to stderr. Exits non-zero on
// any failure, including errors the page shows or logs.

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
    if (m.type() === 'error') pageErrors.push(m.text());
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

  // Open it with the keyboard, claim it.
  await page.locator('#queue').focus();
  await page.keyboard.press('j');
  await page.keyboard.press('Enter');
  await page.locator('#case-body').waitFor({ state: 'visible' });
  await page.locator('#conversation li.inbound').first().waitFor();
  await page.keyboard.press('c');
  await page.locator('#case-status', { hasText: 'open' }).waitFor();
  await page.locator('#case-assignee', { hasText: 'owner' }).waitFor();

  // A private reply: r focuses the reply box, the toggle makes it private.
  await page.keyboard.press('r');
  const box = page.getByLabel('Reply text');
  if (!(await box.evaluate((el) => el === document.activeElement))) {
    throw new Error('r did not focus the reply box');
  }
  await page.getByLabel('Private reply (DM / private message)').check();
  await box.pressSequentially(replyText, { delay: 5 });
  // A double click sends once (one idempotency key per draft).
  await page.getByRole('button', { name: 'Send reply (Ctrl+Enter)' }).dblclick();
  const sent = page.locator('#actions li[data-state="sent"]');
  await sent.filter({ hasText: 'private reply' }).first().waitFor();
  const actionCount = await page.locator('#actions li[data-action-id]').count();
  if (actionCount !== 1) throw new Error(`expected one action, the list shows ${actionCount}`);
  await page.locator('#case-status', { hasText: 'pending' }).waitFor();
  await page.locator('#queue li[data-status="pending"]').waitFor();

  const shown = await page.locator('#errors').innerText();
  if (shown.trim()) throw new Error(`the page shows errors: ${shown}`);
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
