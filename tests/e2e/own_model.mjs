// A visitor's own model: a single-file bundle picked from the disk or given by ?bundle=URL
// opens with its samples, an ONNX file opens imported (predictions equal libtorch's); a truncated file, NaN weights, a
// 100000 x 100000 input, a file that is no bundle and a host without CORS each get a clear
// message, and the page goes on with a bundled model.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
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

const bundleSide = (dir) => JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')).input.width;

// A black grey-scale PNG of `side` x `side`.
function blackPng(side) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(zlib.crc32(Buffer.concat([Buffer.from(type, 'latin1'), data])) >>> 0);
    return Buffer.concat([len, Buffer.from(type, 'latin1'), data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0); ihdr.writeUInt32BE(side, 4); ihdr[8] = 8; ihdr[9] = 0;
  const raw = Buffer.alloc(side * (side + 1));
  return Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
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

    // An ONNX file (mnist-small exported by PyTorch, tests/onnx/bundle_to_onnx.py): imported in
    // the page, shown with where it came from; it holds no samples, so the page says how to
    // give it an image, and it predicts and is attacked like any model.
    const onnx = new URL('./fixtures/mnist-small.onnx', import.meta.url).pathname;
    await pick(page, onnx);
    await page.waitForFunction(() => document.querySelector('#model')?.value === 'your-file', null, { timeout: 60_000 })
      .catch(async () => fail(`${tag} an ONNX file did not open: "${await page.textContent('#notices')}"`));
    await settled(page);
    const onnxCard = await page.textContent('#model-card-body');
    if (!/imported from\s*ONNX \(opset 17/.test(onnxCard)) fail(`${tag} the card of an ONNX model: ${onnxCard.slice(0, 300)}`);
    if (!(await page.$('#no-samples'))) fail(`${tag} an ONNX model without samples does not say how to give it an image`);
    const onnxVerdict = await page.textContent('#network .verdict');
    const said = /^The model says class (\d+) \(([\d.]+)%\)/.exec(onnxVerdict);
    if (!said) fail(`${tag} an ONNX model's verdict: "${onnxVerdict}"`);
    if (said && process.env.ADVLENS_BIN) {
      // The same image (black) through the bundle the ONNX file was made from, by the CLI.
      const black = path.join(dir, 'black.png');
      const source = path.join(dist, 'models', 'mnist-small');
      fs.writeFileSync(black, blackPng(bundleSide(source)));
      const t = JSON.parse(execFileSync(process.env.ADVLENS_BIN, ['trace', '--model', source, '--image', black, '--json'], { encoding: 'utf8' }));
      if (t.predicted !== Number(said[1]) || Math.abs(100 * t.probability - Number(said[2])) > 0.051) {
        fail(`${tag} the ONNX model says class ${said[1]} (${said[2]}%), the bundle it came from ${t.predicted} (${(100 * t.probability).toFixed(1)}%)`);
      }
    }
    await page.click('#attack-button');
    await page.waitForSelector('.attack-outcome', { timeout: 120_000 });
    await settled(page);
    console.log(`${tag} an ONNX file opens (card: imported from ONNX), predicts "${onnxVerdict}" as advlens trace does with the bundle it was made from, and is attacked`);

    // Its pixels, chosen under "Open your own model" (as advlens import --mean --std): an
    // unreadable choice is refused with a notice, a readable one reopens the file with it,
    // the card and the URL say so, and it predicts as the CLI's import with the same flags.
    await page.check('input[name=onnx-pixels][value=custom]');
    await page.fill('#onnx-mean', 'half');
    await page.fill('#onnx-std', '0.25');
    await page.click('button[data-action=reopen-with-choices]');
    await page.waitForFunction(() => /“half” is not a number/.test(document.querySelector('#notices')?.textContent ?? ''), null, { timeout: 10_000 })
      .catch(async () => fail(`${tag} an unreadable mean gave no notice: "${await page.textContent('#notices')}"`));
    await page.fill('#onnx-mean', '0.5');
    await page.click('button[data-action=reopen-with-choices]');
    await page.waitForFunction(() => /normalised with mean 0.5 and std 0.25/.test(document.querySelector('#model-card-body')?.textContent ?? ''), null, { timeout: 60_000 })
      .catch(async () => fail(`${tag} the ONNX file did not reopen with mean 0.5, std 0.25: card "${(await page.textContent('#model-card-body')).slice(0, 300)}", notices "${await page.textContent('#notices')}"`));
    await settled(page);
    if (!/[?&]mean=0.5&std=0.25/.test(page.url())) fail(`${tag} the URL does not hold the pixels chosen: ${page.url()}`);
    const normVerdict = await page.textContent('#network .verdict');
    const normSaid = /^The model says class (\d+) \(([\d.]+)%\)/.exec(normVerdict);
    if (!normSaid) fail(`${tag} the renormalised ONNX model's verdict: "${normVerdict}"`);
    if (normSaid && process.env.ADVLENS_BIN) {
      const imported = path.join(dir, 'onnx-normalised');
      execFileSync(process.env.ADVLENS_BIN, ['import', onnx, '--out', imported, '--mean', '0.5', '--std', '0.25', '--quiet']);
      const black = path.join(dir, 'black-normalised.png');
      fs.writeFileSync(black, blackPng(bundleSide(imported)));
      const t = JSON.parse(execFileSync(process.env.ADVLENS_BIN, ['trace', '--model', imported, '--image', black, '--json'], { encoding: 'utf8' }));
      if (t.predicted !== Number(normSaid[1]) || Math.abs(100 * t.probability - Number(normSaid[2])) > 0.051) {
        fail(`${tag} with mean 0.5, std 0.25 the page says class ${normSaid[1]} (${normSaid[2]}%), advlens import --mean 0.5 --std 0.25 + trace ${t.predicted} (${(100 * t.probability).toFixed(1)}%)`);
      }
      if (normVerdict === onnxVerdict) fail(`${tag} the normalisation changed nothing: "${normVerdict}" both times`);
    }
    await page.check('input[name=onnx-pixels][value=file]');
    console.log(`${tag} the ONNX file's pixels: an unreadable mean is refused, mean 0.5 / std 0.25 reopens it (card, URL), predicting "${normVerdict}" as advlens import --mean --std does`);

    // ImageNet's class names: refused for a 10-class model (the page goes back to a bundled
    // one and says why); a 1000-output file (a linear layer on 4x4 grey images,
    // fixtures/thousand-classes.onnx) names its prediction as advlens import --classes imagenet.
    await page.check('#onnx-imagenet-classes');
    await page.click('button[data-action=reopen-with-choices]');
    await page.waitForFunction(() => /1000 class names were given, the model has 10 outputs/.test(document.querySelector('#notices')?.textContent ?? ''), null, { timeout: 60_000 })
      .catch(async () => fail(`${tag} ImageNet's names on a 10-class model gave no clear notice: "${await page.textContent('#notices')}"`));
    await settled(page);
    if (await page.inputValue('#model') !== catalog[0].id) fail(`${tag} after a refused choice the page shows ${await page.inputValue('#model')}`);
    const thousand = new URL('./fixtures/thousand-classes.onnx', import.meta.url).pathname;
    await pick(page, thousand);
    await page.waitForFunction(() => /\(1000 in all\)/.test(document.querySelector('#model-card-body')?.textContent ?? ''), null, { timeout: 60_000 })
      .catch(async () => fail(`${tag} a 1000-class ONNX file did not open with ImageNet's names: card "${(await page.textContent('#model-card-body')).slice(0, 300)}", notices "${await page.textContent('#notices')}"`));
    await settled(page);
    if (!/[?&]classes=imagenet/.test(page.url())) fail(`${tag} the URL does not say classes=imagenet: ${page.url()}`);
    if (!/tench, goldfish, great white shark/.test(await page.textContent('#model-card-body'))) fail(`${tag} the card does not list ImageNet's first classes`);
    const named = await page.textContent('#network .verdict');
    const namedSaid = /^The model says (.+) \(([\d.]+)%\)/.exec(named);
    if (!namedSaid || /^class \d+$/.test(namedSaid[1])) fail(`${tag} the 1000-class model's verdict is not a name: "${named}"`);
    if (namedSaid && process.env.ADVLENS_BIN) {
      const imported = path.join(dir, 'thousand');
      execFileSync(process.env.ADVLENS_BIN, ['import', thousand, '--out', imported, '--classes', 'imagenet', '--quiet']);
      const black = path.join(dir, 'black-4.png');
      fs.writeFileSync(black, blackPng(bundleSide(imported)));
      const t = JSON.parse(execFileSync(process.env.ADVLENS_BIN, ['trace', '--model', imported, '--image', black, '--json'], { encoding: 'utf8' }));
      const name = JSON.parse(fs.readFileSync(path.join(imported, 'model.json'), 'utf8')).classes[t.predicted];
      if (name !== namedSaid[1] || Math.abs(100 * t.probability - Number(namedSaid[2])) > 0.051) {
        fail(`${tag} the 1000-class model says ${namedSaid[1]} (${namedSaid[2]}%) in the page, ${name} (${(100 * t.probability).toFixed(2)}%) in advlens import --classes imagenet + trace`);
      }
    }
    await page.uncheck('#onnx-imagenet-classes');
    console.log(`${tag} ImageNet's class names: refused for a 10-class model with a notice, given to a 1000-output file (card, URL), which says "${named}" as advlens import --classes imagenet does`);

    // A Keras file (tests/onnx/export_keras.py on TensorFlow, through tf2onnx: channels last,
    // Rescaling(1/255) inside, a softmax output, random weights): the card says how it is read,
    // and it predicts as the CLI's import of the same file does.
    const keras = new URL('./fixtures/keras-cnn.onnx', import.meta.url).pathname;
    await pick(page, keras);
    await page.waitForFunction(() => /channels-last/.test(document.querySelector('#model-card-body')?.textContent ?? ''), null, { timeout: 60_000 })
      .catch(async () => fail(`${tag} a Keras ONNX file did not open: "${await page.textContent('#notices')}"`));
    await settled(page);
    const kerasCard = await page.textContent('#model-card-body');
    if (!/from 0 to 255/.test(kerasCard) || !/final Softmax is left out/.test(kerasCard)) fail(`${tag} the card of a Keras model: ${kerasCard.slice(0, 400)}`);
    const kerasVerdict = await page.textContent('#network .verdict');
    const kerasSaid = /^The model says class (\d+) \(([\d.]+)%\)/.exec(kerasVerdict);
    if (!kerasSaid) fail(`${tag} a Keras model's verdict: "${kerasVerdict}"`);
    if (kerasSaid && process.env.ADVLENS_BIN) {
      const imported = path.join(dir, 'keras-bundle');
      execFileSync(process.env.ADVLENS_BIN, ['import', keras, '--out', imported, '--quiet']);
      const black = path.join(dir, 'black-keras.png');
      fs.writeFileSync(black, blackPng(bundleSide(imported)));
      const t = JSON.parse(execFileSync(process.env.ADVLENS_BIN, ['trace', '--model', imported, '--image', black, '--json'], { encoding: 'utf8' }));
      if (t.predicted !== Number(kerasSaid[1]) || Math.abs(100 * t.probability - Number(kerasSaid[2])) > 0.051) {
        fail(`${tag} the Keras model says class ${kerasSaid[1]} (${kerasSaid[2]}%) in the page, ${t.predicted} (${(100 * t.probability).toFixed(1)}%) in advlens trace`);
      }
    }
    console.log(`${tag} a Keras ONNX file (channels last, 0-255 pixels, softmax output) opens, says so on its card, and predicts "${kerasVerdict}" as advlens import + trace do`);

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
