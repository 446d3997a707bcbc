// Regenerates the screenshot gallery of docs/explorer.md from a production build:
//   node tests/e2e/screenshots.mjs <dist dir> <out dir>     (scripts/screenshots.sh)
// Desktop (1280 px) and phone (390 px) views on the CPU engine: the default model, the attack's
// step slider and the neurons before / after, Fashion-MNIST standard vs consistent compared, the
// ensemble attack with a held-out model, and the CIFAR-10 model's network and one neuron.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve, close } from './serve.mjs';

const dist = path.resolve(process.argv[2] ?? 'dist');
const out = path.resolve(process.argv[3] ?? 'docs/screenshots');
fs.mkdirSync(out, { recursive: true });
const server = await serve(dist, '/');
const base = `http://127.0.0.1:${server.address().port}/`;
const shots = [
  // [file, viewport width, height, query, element to show (scrolled to the top) or null]
  ['overview-desktop.png', 1280, 1000, '?sample=2', null],
  ['neuron-desktop.png', 1280, 900, '?sample=0&layer=relu2&neuron=6', '#why'],
  ['attack-desktop.png', 1280, 1000, '?sample=2&image=adversarial', '#network'],
  ['attack-result-desktop.png', 1280, 800, '?sample=2&image=adversarial', '#attack'],
  ['attack-step-desktop.png', 1280, 900, '?sample=2&image=adversarial&steps=20&step=6', '#attack'],
  ['before-after-desktop.png', 1280, 900, '?sample=2&image=adversarial', '#why .aligned'],
  ['compare-desktop.png', 1280, 1000, '?model=fashion-standard&sample=2&image=adversarial&compare=fashion-consistent', '#compare'],
  ['ensemble-desktop.png', 1280, 900, '?sample=2&image=adversarial&attack=ensemble&eps=0.3&steps=30&target=4', '#attack .companions'],
  ['cifar-network-desktop.png', 1280, 1000, '?model=cifar10-standard&sample=3', '#network'],
  ['cifar-neuron-desktop.png', 1280, 1000, '?model=cifar10-standard&sample=3&layer=block3_out&neuron=5', '#neuron'],
  ['overview-phone.png', 390, 844, '?sample=2', null],
  ['neuron-phone.png', 390, 844, '?sample=0&neuron=6', '#neuron'],
  ['attack-step-phone.png', 390, 844, '?sample=2&image=adversarial&steps=20&step=6', '#attack-result .attack-outcome'],
  ['compare-phone.png', 390, 844, '?model=fashion-standard&sample=2&image=adversarial&compare=fashion-consistent', '#compare'],
  ['share-phone.png', 390, 844, '?sample=2', '#model-card'],
  ['cifar-neuron-phone.png', 390, 844, '?model=cifar10-standard&sample=3&layer=block3_out&neuron=5', '#neuron .patches'],
];
const args = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];
try {
  for (const [file, width, height, query, anchor] of shots) {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'advlens-shots-'));
    const context = await chromium.launchPersistentContext(profile, { executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args, viewport: { width, height } });
    const page = context.pages()[0] ?? await context.newPage();
    await page.goto(base + query, { waitUntil: 'load' });
    await page.waitForSelector('#status[data-state="ready"]', { timeout: 120_000 });
    // The comparison and the aligned neurons finish after the page is ready.
    await page.waitForSelector('#compare-view:not([data-state="running"])', { timeout: 120_000 });
    if (query.includes('image=adversarial')) await page.waitForSelector('.aligned[data-state="done"]', { timeout: 120_000 });
    if (file.startsWith('share')) await page.click('#own-model summary');
    if (anchor) await page.$eval(anchor, (e) => e.scrollIntoView());
    await page.screenshot({ path: path.join(out, file) });
    console.log(`wrote ${path.join(out, file)}`);
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
} finally {
  await close(server);
}
