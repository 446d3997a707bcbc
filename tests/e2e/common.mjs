// Helpers shared by the end-to-end test's parts: failing, a browser with a main-thread
// long-task probe and a panic listener, waiting for the page to settle.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const TIMEOUT = 120_000;

export function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exitCode = 1;
}
export const close_to = (a, b, tol = 1e-4) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

export async function browser(mode, viewport = { width: 1280, height: 900 }) {
  const args = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];
  if (mode === 'webgpu') args.push('--enable-unsafe-webgpu');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'advlens-e2e-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: chromiumPath, headless: true, args, viewport });
  // The longest main-thread task, for the budget: the page must stay responsive.
  await context.addInitScript(() => {
    window.__longest = 0;
    new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__longest = Math.max(window.__longest, e.duration); })
      .observe({ type: 'longtask', buffered: true });
  });
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /panicked|RuntimeError|unreachable|Uncaught/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  return { page, errors, done: async () => { await context.close(); fs.rmSync(profile, { recursive: true, force: true }); } };
}

// Waits until the page has finished what the last navigation asked for.
export async function settled(page) {
  await page.waitForSelector('#status[data-state="ready"], #status[data-state="error"], #status[data-state="panic"]', { timeout: TIMEOUT });
  const state = await page.getAttribute('#status', 'data-state');
  if (state !== 'ready') throw new Error(`page not ready: ${state}: ${await page.textContent('#status')}`);
}

export const query = (page) => new URL(page.url()).searchParams;
export const influences = (page) => page.$$eval('#why .influence', (items) => items.map((i) => ({
  channel: Number(i.dataset.channel), logitDrop: Number(i.dataset.logitDrop), gradXAct: Number(i.dataset.gradXAct), probDrop: Number(i.dataset.probDrop),
})));


// An f32 image the page exposes as base64url little-endian bytes (`data-pixels`).
export const f32s = (b64) => {
  const bytes = Buffer.from(b64, 'base64url');
  return Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
};
export const linf = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), a.length === b.length ? 0 : Infinity);
