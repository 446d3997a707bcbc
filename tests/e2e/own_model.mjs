// A visitor's own model: a single-file bundle picked from the disk or given by ?bundle=URL
// opens with its samples (predictions equal libtorch's); a truncated file, NaN weights, a
// 100000 x 100000 input, a file that is no bundle and a host without CORS each get a clear
// message, and the page goes on with a bundled model.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fail, settled } from './common.mjs';
import { serve, close } from './serve.mjs';

// The bundle folder as one safetensors file with `metadata`, written here rather than by the
// command so that the broken variants below are easy to make.
function singleFile(dir, change = (spec) => spec) {
  const weights = fs.readFileSync(path.join(dir, 'weights.safetensors'));
  const n = Number(weights.readBigUInt64LE(0));
  const header = JSON.parse(weights.subarray(8, 8 + n).toString());
  const spec = change(JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')));
  header.__metadata__ = { 'advlens.model': JSON.stringify(spec), 'advlens.samples': fs.readFileSync(path.join(dir, 'samples.json'), 'utf8') };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([size, Buffer.from(json), weights.subarray(8 + n)]);
}

async function pick(page, file) {
  if (!(await page.$eval('#own-model', (d) => d.open))) await page.click('#own-model summary');
  await page.setInputFiles('#model-file', file);
}

const predictions = (page) => page.$$eval('#gallery .sample', (cards) => cards.map((c) => Number(c.dataset.predicted)));

export async function ownModels(page, base, tag, { dist, expected }) {
  const catalog = JSON.parse(fs.readFileSync(path.join(dist, 'models', 'index.json'), 'utf8'));
  const bundle = path.join(dist, 'models', catalog[0].id);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advlens-own-'));
  const file = (name, bytes) => { const p = path.join(dir, name); fs.writeFileSync(p, bytes); return p; };
  const good = path.join(dir, 'mine.advlens.safetensors');
  if (process.env.ADVLENS_BIN) execFileSync(process.env.ADVLENS_BIN, ['pack', '--model', bundle, '--out', good], { stdio: 'ignore' });
  else fs.writeFileSync(good, singleFile(bundle));
  const bytes = fs.readFileSync(good);
  const nan = Buffer.from(bytes);
  nan.writeFloatLE(NaN, nan.length - 4);
  const bad = [
    ['truncated', file('truncated.advlens.safetensors', bytes.subarray(0, bytes.length - 4000)), /cut off/],
    ['NaN weights', file('nan.advlens.safetensors', nan), /not finite/],
    ['a 100000×100000 input', file('huge.advlens.safetensors', singleFile(bundle, (s) => ({ ...s, input: { ...s.input, height: 100000, width: 100000 } }))), /100000 × 100000/],
    ['not a bundle', path.join(bundle, 'atlas', catalog[0].atlas[0], 'real.png'), /advlens pack/],
  ];
  const withCors = await serve(dir, '/', { cors: true });
  const without = await serve(dir, '/');
  try {
    await page.goto(`${base}?sample=0`);
    await settled(page);
    // A picked file: its samples, predicted as libtorch predicted them, and its card.
    await pick(page, good);
    await page.waitForFunction(() => document.querySelector('#model')?.value === 'your-file');
    await settled(page);
    if (JSON.stringify(await predictions(page)) !== JSON.stringify(expected)) fail(`${tag} a picked model file predicts ${await predictions(page)}, libtorch ${expected}`);
    const card = await page.textContent('#model-card-body');
    if (!/a file from your disk/.test(card)) fail(`${tag} the card of a picked model: ${card.slice(0, 200)}`);
    // An attack runs on it.
    await page.click('#attack-button');
    await page.waitForSelector('.attack-outcome', { timeout: 120_000 });
    await settled(page);

    for (const [name, f, want] of bad) {
      await pick(page, f);
      await page.waitForFunction((w) => new RegExp(w).test(document.querySelector('#notices')?.textContent ?? ''), want.source, { timeout: 60_000 })
        .catch(async () => fail(`${tag} ${name}: the notice says "${await page.textContent('#notices')}"`));
      await settled(page);
      if (await page.inputValue('#model') !== catalog[0].id) fail(`${tag} after ${name} the page shows model ${await page.inputValue('#model')}`);
    }

    // ?bundle=URL: from a host that allows it, and from one that does not.
    const allowed = `http://127.0.0.1:${withCors.address().port}/mine.advlens.safetensors`;
    await page.goto(`${base}?bundle=${encodeURIComponent(allowed)}`);
    await settled(page);
    if (JSON.stringify(await predictions(page)) !== JSON.stringify(expected)) fail(`${tag} ?bundle= predicts ${await predictions(page)}, libtorch ${expected}`);
    if (!(await page.inputValue('#model')).startsWith('url:')) fail(`${tag} ?bundle= is not the selected model`);
    const refused = `http://127.0.0.1:${without.address().port}/mine.advlens.safetensors`;
    await page.goto(`${base}?bundle=${encodeURIComponent(refused)}`);
    await settled(page);
    const notes = await page.textContent('#notices');
    if (!/CORS/.test(notes)) fail(`${tag} a host without CORS: "${notes}"`);
    console.log(`${tag} own models: a picked file and ?bundle= open with libtorch's predictions; ${bad.map((b) => b[0]).join(', ')} and a host without CORS are refused with a message`);
  } finally {
    await close(withCors);
    await close(without);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
