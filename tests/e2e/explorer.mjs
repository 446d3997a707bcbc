// End-to-end test of the built explorer in Debian's Chromium, driven by playwright-core.
//   node tests/e2e/explorer.mjs <dist dir>
// Serves the dist folder on 127.0.0.1, opens the page twice — with --enable-unsafe-webgpu
// (the page must use WebGPU) and without it (the page must fall back to the CPU) — and requires
// the predicted class of every sample image to equal what the trainer computed with libtorch
// (samples.json). A page error or a Rust panic fails the test. Screenshots go to
// tests/e2e/artifacts/.
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(process.argv[2] ?? 'dist');
const artifacts = path.join(here, 'artifacts');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css', '.png': 'image/png' };

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exitCode = 1;
}

function serve(root) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const file = path.join(root, decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname));
    if (!file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// The inspector's atlas patches must be the atlas's: the right sheet row for each traced
// neuron, its top patches in order, and sheets that load at the size atlas.json implies.
async function checkAtlas(page, tag, atlas) {
  const cell = atlas.patch + 1;
  const rows = await page.$$eval('#clean .neuron', (items) => items.map((i) => ({
    channel: Number(i.dataset.channel),
    row: i.querySelector('.atlas') ? Number(i.querySelector('.atlas').dataset.row) : null,
    real: [...i.querySelectorAll('.patches.real .patch')].map((p) => Number(p.dataset.label)),
    adversarial: [...i.querySelectorAll('.patches.adversarial .patch')].length,
    position: i.querySelector('.patches.real .patch')?.style.backgroundPosition,
    about: i.querySelector('.atlas .about')?.textContent ?? '',
  })));
  for (const r of rows) {
    const row = atlas.neurons.findIndex((n) => n.stats.channel === r.channel);
    if (r.row !== row) { fail(`${tag} neuron ${r.channel}: atlas row ${r.row}, expected ${row}`); continue; }
    if (atlas.neurons[row].stats.silent) {
      // Ties in image order say nothing about a silent neuron: no patches, only the note.
      if (r.real.length || r.adversarial || !/^silent/.test(r.about)) fail(`${tag} silent neuron ${r.channel}: ${r.real.length} + ${r.adversarial} patches, note "${r.about}"`);
      continue;
    }
    const labels = atlas.neurons[row].real.slice(0, 5).map((e) => e.label);
    if (JSON.stringify(r.real) !== JSON.stringify(labels)) fail(`${tag} neuron ${r.channel}: real patches ${r.real}, atlas ${labels}`);
    if (r.adversarial !== 5) fail(`${tag} neuron ${r.channel}: ${r.adversarial} adversarial patches`);
    if (r.position !== `0px -${row * cell * 3}px` && r.position !== `-0px -${row * cell * 3}px`) fail(`${tag} neuron ${r.channel}: sprite position ${r.position}`);
  }
  const sizes = await page.evaluate(async (urls) => Promise.all(urls.map(async (u) => {
    const img = new Image();
    img.src = u;
    await img.decode();
    return [img.naturalWidth, img.naturalHeight];
  })), ['real', 'adversarial'].map((k) => `models/${atlas.id}/atlas/${k}.png`));
  const want = [atlas.top_k * cell, atlas.neurons.length * cell];
  for (const s of sizes) if (JSON.stringify(s) !== JSON.stringify(want)) fail(`${tag} atlas sheet is ${s}, atlas.json says ${want}`);
  const silent = rows.filter((r) => atlas.neurons.find((n) => n.stats.channel === r.channel)?.stats.silent).length;
  console.log(`${tag} atlas rows shown for ${rows.length} traced neurons (${silent} silent)`);
}

async function check(base, mode, expected, { model, epsilon, mustFool, atlas }) {
  const args = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];
  if (mode === 'webgpu') args.push('--enable-unsafe-webgpu');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'advlens-e2e-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: chromiumPath, headless: true, args });
  const errors = [];
  try {
    const page = context.pages()[0] ?? await context.newPage();
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && /panicked|RuntimeError|unreachable/.test(m.text())) errors.push(`console: ${m.text()}`);
    });
    await page.goto(`${base}?model=${model}`, { waitUntil: 'load' });
    await page.waitForSelector('#status:not([data-state="loading"])', { timeout: 120_000 });
    const state = await page.getAttribute('#status', 'data-state');
    const statusText = await page.textContent('#status');
    const engine = await page.getAttribute('#engine', 'data-engine');
    const engineText = await page.textContent('#engine');
    const predicted = await page.$$eval('figure.sample', (cards) => cards.map((c) => Number(c.dataset.predicted)));
    fs.mkdirSync(artifacts, { recursive: true });
    const shot = path.join(artifacts, `explorer-${model}-${mode}.png`);
    await page.screenshot({ path: shot, fullPage: true });

    console.log(`[${model} ${mode}] status=${state} "${statusText}"`);
    console.log(`[${model} ${mode}] engine=${engine} "${engineText}"`);
    console.log(`[${model} ${mode}] screenshot ${path.relative(process.cwd(), shot)}`);
    if (state !== 'ready') fail(`[${model} ${mode}] page did not become ready: ${state}: ${statusText}`);
    if (engine !== mode) fail(`[${model} ${mode}] page reports engine ${engine}, expected ${mode}`);
    if (JSON.stringify(predicted) !== JSON.stringify(expected)) {
      fail(`[${model} ${mode}] predictions ${JSON.stringify(predicted)} differ from libtorch's ${JSON.stringify(expected)}`);
    } else {
      console.log(`[${model} ${mode}] ${predicted.length} predictions equal libtorch's`);
    }
    // The inspector: sample 0's traced neurons, then a live PGD attack and the new neurons.
    const cleanNeurons = await page.$$eval('#clean .neuron', (items) => items.map((i) => Number(i.dataset.logitDrop)));
    const cleanPredicted = Number(await page.getAttribute('#clean', 'data-predicted'));
    if (cleanNeurons.length !== 5) fail(`[${model} ${mode}] inspector shows ${cleanNeurons.length} traced neurons, expected 5`);
    if (cleanPredicted !== expected[0]) fail(`[${model} ${mode}] inspector predicts ${cleanPredicted} for sample 0, libtorch ${expected[0]}`);
    if (cleanNeurons.some((v, i) => i > 0 && v > cleanNeurons[i - 1])) fail(`[${model} ${mode}] traced neurons not sorted by effect: ${cleanNeurons}`);
    if (atlas) await checkAtlas(page, `[${model} ${mode}]`, atlas);
    await page.click('#attack');
    await page.waitForSelector('#adversarial[data-state="done"], #adversarial[data-state="error"]', { timeout: 120_000 });
    const attack = await page.$eval('#adversarial', (e) => ({ ...e.dataset, neurons: e.querySelectorAll('.neuron').length }));
    await page.screenshot({ path: path.join(artifacts, `inspector-${model}-${mode}.png`), fullPage: true });
    console.log(`[${model} ${mode}] attack: ${JSON.stringify(attack)}`);
    if (attack.state !== 'done') fail(`[${model} ${mode}] the attack did not finish: ${await page.textContent('#adversarial')}`);
    if (!(Number(attack.linf) > 0 && Number(attack.linf) <= epsilon + 1e-4)) fail(`[${model} ${mode}] attack left its budget ${epsilon}: max change ${attack.linf}`);
    if (mustFool && (attack.success !== 'true' || Number(attack.predicted) === cleanPredicted)) fail(`[${model} ${mode}] PGD-10 at eps ${epsilon} did not change the prediction`);
    if (attack.neurons !== 5) fail(`[${model} ${mode}] ${attack.neurons} traced neurons after the attack`);
    for (const e of errors) fail(`[${model} ${mode}] ${e}`);
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

const catalog = JSON.parse(fs.readFileSync(path.join(dist, 'models', 'index.json'), 'utf8'));
const server = await serve(dist);
const base = `http://127.0.0.1:${server.address().port}/`;
try {
  for (const [k, entry] of catalog.entries()) {
    const dir = path.join(dist, 'models', entry.id);
    const samples = JSON.parse(fs.readFileSync(path.join(dir, 'samples.json'), 'utf8'));
    const spec = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    const expected = samples.samples.map((s) => s.reference.predicted);
    if (expected.length === 0) fail(`${entry.id}: samples.json has no samples`);
    // The inspector attacks at the model's training epsilon, else 0.2; an undefended model must
    // be fooled, an adversarially trained one may resist.
    const epsilon = spec.provenance?.epsilon ?? 0.2;
    const atlas = entry.atlas ? { id: entry.id, ...JSON.parse(fs.readFileSync(path.join(dir, 'atlas', 'atlas.json'), 'utf8')) } : null;
    const options = { model: entry.id, epsilon, mustFool: !spec.provenance?.epsilon, atlas };
    // Every model on WebGPU; the first also on the CPU fallback.
    for (const mode of k === 0 ? ['webgpu', 'cpu'] : ['webgpu']) await check(base, mode, expected, options);
  }
} finally {
  server.close();
}
if (process.exitCode) console.error('explorer end-to-end test FAILED');
else console.log('explorer end-to-end test passed');
