// The explorer's budget, measured on the production build in headless Chromium:
//   node tests/bench/page-budget.mjs <dist dir> [runs]
// - payload: gzip size of what a first visit downloads (page, engine, default model, the first
//   atlas shown); goal <= 1.5 MB, enforced (exit 1 when over);
// - time to first prediction: from the load event to the sample predictions on the page, on the
//   CPU engine (goal <= 0.5 s) and on WebGPU (SwiftShader here: a software adapter);
// - the longest main-thread task during load, a neuron switch and an attack (goal < 50 ms);
// - an attack of 20 steps on the 3x32x32 concept-world model and on the CIFAR-10 ResNet: time
//   per step on each engine, from the page's own progress reports (worker compute + messages).
// Medians over `runs` page loads (default 3). Prints a Markdown table for docs/benchmarks.md.
import { chromium } from '../e2e/node_modules/playwright-core/index.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { serve, close } from '../e2e/serve.mjs';

const dist = path.resolve(process.argv[2] ?? 'dist');
const runs = Number(process.argv[3] ?? 3);
const PAYLOAD_GOAL = 1.5 * 1024 * 1024;

// An atlas folder's files: atlas.json and its two sheets (PNG, or JPEG for colour models).
const atlasFiles = (dir) => {
  const ext = JSON.parse(fs.readFileSync(path.join(dir, 'atlas.json'), 'utf8')).sheets === 'jpeg' ? 'jpg' : 'png';
  return ['atlas.json', `real.${ext}`, `adversarial.${ext}`].map((f) => path.join(dir, f));
};
const gz = (file) => zlib.gzipSync(fs.readFileSync(file), { level: 9 }).length;
const catalog = JSON.parse(fs.readFileSync(path.join(dist, 'models', 'index.json'), 'utf8'));
const first = catalog[0];
const model = path.join(dist, 'models', first.id);
const atlasLayer = first.atlas[first.atlas.length - 1];
const parts = {
  page: fs.readdirSync(dist).filter((f) => /\.(html|css|js)$/.test(f)).map((f) => path.join(dist, f)),
  engine: fs.readdirSync(dist).filter((f) => f.endsWith('.wasm')).map((f) => path.join(dist, f)),
  model: ['model.json', 'weights.safetensors', 'samples.json'].map((f) => path.join(model, f)).concat([path.join(dist, 'models', 'index.json')]),
  atlas: atlasLayer ? atlasFiles(path.join(model, 'atlas', atlasLayer)) : [],
};
const payload = Object.fromEntries(Object.entries(parts).map(([k, files]) => [k, files.reduce((s, f) => s + gz(f), 0)]));
const total = Object.values(payload).reduce((a, b) => a + b, 0);

// A fresh browser profile (WebGPU on with mode "webgpu") whose pages record their longest
// main-thread task in window.__longest.
async function launch(mode) {
  const args = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];
  if (mode === 'webgpu') args.push('--enable-unsafe-webgpu');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'advlens-budget-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args });
  await context.addInitScript(() => {
    window.__longest = 0;
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__longest = Math.max(window.__longest, e.duration); }).observe({ type: 'longtask', buffered: true });
  });
  const close = async () => { await context.close(); fs.rmSync(profile, { recursive: true, force: true }); };
  return { context, page: context.pages()[0] ?? await context.newPage(), close };
}

async function measure(base, mode) {
  const { context, page, close } = await launch(mode);
  await context.addInitScript(() => {
    new MutationObserver((_, obs) => {
      if (document.querySelector('#gallery .sample[data-predicted]')) { window.__predicted = performance.now(); obs.disconnect(); }
    }).observe(document, { subtree: true, childList: true });
  });
  const ready = () => page.waitForSelector('#status[data-state="ready"]', { timeout: 120_000 });
  try {
    await page.goto(base, { waitUntil: 'load' });
    await ready();
    const t = await page.evaluate(() => ({ load: performance.getEntriesByType('navigation')[0].loadEventEnd, predicted: window.__predicted, longest: window.__longest }));
    await page.evaluate(() => { window.__longest = 0; });
    await page.click('#network a.channel[data-channel="1"]');
    await page.waitForFunction(() => document.querySelector('.neuron-view')?.dataset.channel === '1');
    await ready();
    const neuron = await page.evaluate(() => window.__longest);
    await page.evaluate(() => { window.__longest = 0; });
    await page.click('#attack-button');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('image') === 'adversarial', null, { timeout: 120_000 });
    await ready();
    const attack = await page.evaluate(() => window.__longest);
    return { firstPrediction: t.predicted - t.load, longestLoad: t.longest, longestNeuron: neuron, longestAttack: attack };
  } finally {
    await close();
  }
}

// Time per attack step: the page's progress reports of a PGD-20, first to last.
async function attackSteps(base, mode, model) {
  const { page, close } = await launch(mode);
  try {
    await page.goto(`${base}?model=${model}&steps=20`, { waitUntil: 'load' });
    await page.waitForSelector('#status[data-state="ready"]', { timeout: 120_000 });
    await page.evaluate(() => {
      window.__longest = 0;
      window.__steps = [];
      new MutationObserver(() => {
        const m = /step (\d+) of 20/.exec(document.querySelector('#attack-progress-text')?.textContent ?? '');
        if (m && !window.__steps.some((s) => s[0] === Number(m[1]))) window.__steps.push([Number(m[1]), performance.now()]);
      }).observe(document, { subtree: true, childList: true, characterData: true });
    });
    await page.click('#attack-button');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('image') === 'adversarial', null, { timeout: 300_000 });
    const { steps, longest } = await page.evaluate(() => ({ steps: window.__steps, longest: window.__longest }));
    const first = steps.find((s) => s[0] === 1), last = steps.find((s) => s[0] === 20);
    return { perStep: first && last ? (last[1] - first[1]) / 19 : NaN, seen: steps.length, longest };
  } finally {
    await close();
  }
}

// The models whose PGD-20 is timed: [description, catalog id prefix].
const attacked = [['3x32x32 concept-world model', 'concepts'], ['CIFAR-10 ResNet-8', 'cifar10']];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const server = await serve(dist, '/');
const base = `http://127.0.0.1:${server.address().port}/`;
const results = {};
try {
  for (const mode of ['cpu', 'webgpu']) {
    const all = [];
    for (let i = 0; i < runs; i++) all.push(await measure(base, mode));
    results[mode] = Object.fromEntries(Object.keys(all[0]).map((k) => [k, median(all.map((r) => r[k]))]));
  }
  for (const [what, prefix] of attacked) {
    const entry = catalog.find((e) => e.id.startsWith(prefix));
    if (entry) for (const mode of ['cpu', 'webgpu']) results[`${mode}-attack-${what}`] = await attackSteps(base, mode, entry.id);
  }
} finally {
  await close(server);
}
const kb = (b) => `${(b / 1024).toFixed(0)} KB`;
const ms = (v) => `${Math.max(0, v).toFixed(0)} ms`;
console.log(`| measure | value | goal |\n|---|---|---|`);
console.log(`| payload, gzip: page ${kb(payload.page)} + engine ${kb(payload.engine)} + model ${kb(payload.model)} + atlas ${kb(payload.atlas)} | **${kb(total)}** | <= 1536 KB |`);
for (const mode of ['cpu', 'webgpu']) {
  const r = results[mode];
  console.log(`| first prediction after load, ${mode} (median of ${runs}) | ${ms(r.firstPrediction)} | ${mode === 'cpu' ? '<= 500 ms' : '-'} |`);
  console.log(`| longest main-thread task, ${mode}: load / neuron switch / attack | ${ms(r.longestLoad)} / ${ms(r.longestNeuron)} / ${ms(r.longestAttack)} | < 50 ms |`);
}
for (const [what] of attacked) for (const mode of ['cpu', 'webgpu']) {
  const r = results[`${mode}-attack-${what}`];
  if (r) console.log(`| PGD-20 on the ${what}, ${mode}: time per step (${r.seen} progress reports); longest main-thread task | ${r.perStep.toFixed(1)} ms; ${ms(r.longest)} | < 50 ms task |`);
}
if (total > PAYLOAD_GOAL) {
  console.error(`FAIL: first-visit payload ${kb(total)} is over the ${kb(PAYLOAD_GOAL)} goal`);
  process.exitCode = 1;
}
