// End-to-end test of the built explorer in Debian's Chromium, driven by playwright-core.
//   node tests/e2e/explorer.mjs <dist dir>
// Serves the dist folder under a sub-path (as a course page would host it) and opens every
// bundled model with WebGPU (--enable-unsafe-webgpu; the page must use it, in its worker) and the
// first one also without (the page must fall back to the CPU engine). For each it checks the
// predictions against libtorch's (samples.json), the network, trace and neuron views, navigation
// without reload (clicks, keyboard, back, reload), a live attack clicked twice, and — for the
// first model — bad URLs, a missing or broken atlas, and the phone layout. When ADVLENS_BIN
// names the `advlens` binary, the page's trace numbers must equal `advlens trace --json`'s.
// A page error or a Rust panic fails the test. Screenshots go to tests/e2e/artifacts/.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, close } from './serve.mjs';
import { TIMEOUT, browser, close_to, fail, influences, query, settled } from './common.mjs';
import { attackLab, ensembleLab, rapidClicks, scrub } from './attack_lab.mjs';
import { ownModels } from './own_model.mjs';
import { share } from './share.mjs';
import { compareModels } from './compare.mjs';
import { deviceLoss } from './device_loss.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(process.argv[2] ?? 'dist');
const artifacts = path.join(here, 'artifacts');
const PREFIX = '/course/advlens/';

// The neuron view's patches must be the atlas's: the right row, its top patches in order.
async function checkNeuronAtlas(page, tag, atlases, layer, hierarchy) {
  const atlas = atlases[layer];
  const view = await page.$eval('.neuron-view', (v) => ({
    layer: v.dataset.layer, channel: Number(v.dataset.channel),
    row: v.querySelector('.atlas') ? Number(v.querySelector('.atlas').dataset.row) : null,
    silent: v.querySelector('.atlas')?.dataset.silent,
    real: [...v.querySelectorAll('.patches.real .patch')].map((p) => Number(p.dataset.label)),
    adversarial: v.querySelectorAll('.patches.adversarial .patch').length,
    captions: [...v.querySelectorAll('.patches.adversarial figcaption')].map((c) => c.textContent),
    chance: Number(v.querySelector('.atlas')?.dataset.chance),
    note: v.querySelector('.note')?.textContent ?? '',
  }));
  if (!atlas) {
    if (!/no neuron atlas/.test(view.note)) fail(`${tag} ${layer} has no atlas, but the neuron view says "${view.note}"`);
    return view;
  }
  const row = atlas.neurons.findIndex((n) => n.stats.channel === view.channel);
  if (view.row !== row) fail(`${tag} neuron ${view.channel}: atlas row ${view.row}, expected ${row}`);
  if (atlas.neurons[row].stats.silent) {
    if (view.real.length || view.silent !== 'true') fail(`${tag} silent neuron ${view.channel} shows ${view.real.length} patches`);
    return view;
  }
  const labels = atlas.neurons[row].real.slice(0, 5).map((e) => e.label);
  if (JSON.stringify(view.real) !== JSON.stringify(labels)) fail(`${tag} neuron ${view.channel}: real patches ${view.real}, atlas ${labels}`);
  if (view.adversarial !== 5 || !view.captions.every((c) => /made to look like/.test(c))) fail(`${tag} neuron ${view.channel}: adversarial patches ${view.captions}`);
  // consis chance: (1 - 1/K) sum(A)/C^2 + trace(A)/(C K), with A the class similarity (the
  // identity, or from the model's WordNet hierarchy: 1/C + (1 - 1/C)/K for the identity).
  const C = atlas.classes.length, K = atlas.top_k;
  const A = classSimilarity(atlas.classes, hierarchy ?? {});
  const sum = A.flat().reduce((a, b) => a + b, 0), trace = A.reduce((t, row, i) => t + row[i], 0);
  if (!close_to(view.chance, (1 - 1 / K) * sum / (C * C) + trace / (C * K), 1e-9)) fail(`${tag} chance level ${view.chance}`);
  return view;
}

// The class similarity of docs/analysis.md, written again here: 1 on the diagonal; else
// 2 depth(lowest common ancestor) / (depth(a) + depth(b)) along the hierarchy's chains, 0 without one.
function classSimilarity(classes, hierarchy) {
  const chain = (c) => { const p = [c]; while (hierarchy[p[p.length - 1]] && !p.includes(hierarchy[p[p.length - 1]])) p.push(hierarchy[p[p.length - 1]]); return p; };
  const chains = classes.map(chain);
  return chains.map((ci, i) => chains.map((cj, j) => {
    if (i === j) return 1;
    const lca = ci.find((n) => cj.includes(n));
    return lca === undefined ? 0 : 2 * (ci.length - ci.indexOf(lca)) / (ci.length + cj.length);
  }));
}

async function check(base, mode, model, { expected, epsilon, mustFool, atlases, layers, extras, withLab, companion, hierarchy }) {
  const tag = `[${model} ${mode}]`;
  const { page, errors, done } = await browser(mode);
  const longest = {};
  try {
    const t0 = Date.now();
    await page.goto(`${base}?model=${model}`, { waitUntil: 'load' });
    await settled(page);
    const loadMs = Date.now() - t0;
    longest.load = await page.evaluate(() => window.__longest);
    const engine = await page.$eval('#engine', (e) => ({ ...e.dataset, text: e.textContent }));
    console.log(`${tag} ready in ${loadMs} ms; ${engine.text}`);
    if (engine.engine !== mode) fail(`${tag} page reports engine ${engine.engine}, expected ${mode}`);
    if (engine.worker !== 'true') fail(`${tag} the model does not run in a worker: ${engine.text}`);
    const predicted = await page.$$eval('#gallery .sample', (cards) => cards.map((c) => Number(c.dataset.predicted)));
    if (JSON.stringify(predicted) !== JSON.stringify(expected)) fail(`${tag} predictions ${predicted} differ from libtorch's ${expected}`);
    else console.log(`${tag} ${predicted.length} predictions equal libtorch's`);

    // Network view: every feature layer, every channel, the prediction.
    const shown = await page.$$eval('#network .layer', (ls) => ls.map((l) => [l.dataset.layer, l.querySelectorAll('.channel').length]));
    if (JSON.stringify(shown) !== JSON.stringify(layers)) fail(`${tag} network shows ${JSON.stringify(shown)}, the model has ${JSON.stringify(layers)}`);
    const netPredicted = Number(await page.getAttribute('#network .prediction', 'data-predicted'));
    if (netPredicted !== expected[0]) fail(`${tag} network view predicts ${netPredicted} for sample 0, libtorch ${expected[0]}`);

    // Why this prediction: sorted by effect; the neuron view opens the most influential one.
    const traced = await influences(page);
    if (traced.length !== 6) fail(`${tag} ${traced.length} influential neurons listed, expected 6`);
    if (traced.some((v, i) => i > 0 && v.logitDrop > traced[i - 1].logitDrop)) fail(`${tag} influences not sorted: ${traced.map((t) => t.logitDrop)}`);
    const lastLayer = layers[layers.length - 1][0];
    const top = await checkNeuronAtlas(page, tag, atlases, lastLayer, hierarchy);
    if (top.channel !== traced[0].channel) fail(`${tag} neuron view shows ${top.channel}, the most influential is ${traced[0].channel}`);
    await page.screenshot({ path: path.join(artifacts, `explorer-${model}-${mode}.png`), fullPage: true });

    // A click on a channel of the first layer: new URL, no reload, that neuron opened.
    await page.evaluate(() => { window.__sameDocument = true; });
    const t1 = Date.now();
    await page.click(`#network a.channel[data-layer="${layers[0][0]}"][data-channel="3"]`);
    await page.waitForFunction(() => document.querySelector('.neuron-view')?.dataset.channel === '3');
    await settled(page);
    const switchMs = Date.now() - t1;
    if (query(page).get('layer') !== layers[0][0] || query(page).get('neuron') !== '3') fail(`${tag} URL after a channel click: ${page.url()}`);
    if (!(await page.evaluate(() => window.__sameDocument))) fail(`${tag} clicking a neuron reloaded the page`);
    await checkNeuronAtlas(page, tag, atlases, layers[0][0], hierarchy);
    longest.neuronSwitch = await page.evaluate(() => window.__longest);

    // Keyboard: focus sample 2, press Enter: that sample, focus kept on it.
    await page.focus('#gallery a[data-key="sample-2"]');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('sample') === '2');
    await settled(page);
    const focused = await page.evaluate(() => document.activeElement?.dataset?.key);
    if (focused !== 'sample-2') fail(`${tag} focus after keyboard navigation is on ${focused}`);
    if (Number(await page.getAttribute('#network .prediction', 'data-predicted')) !== expected[2]) fail(`${tag} sample 2 predicted differently from libtorch`);
    if (await page.getAttribute('#gallery a[data-key="sample-2"]', 'aria-current') !== 'true') fail(`${tag} sample 2 is not marked current`);

    // The attack, clicked twice: the second click must do nothing (the button is disabled).
    const t2 = Date.now();
    const disabled = await page.evaluate(async () => {
      const b = document.querySelector('#attack-button');
      b.click();
      await new Promise((r) => setTimeout(r, 0));
      const d = b.disabled;
      b.click();
      return d;
    });
    if (!disabled) fail(`${tag} the attack button stays enabled while attacking`);
    await page.waitForFunction(() => new URL(location.href).searchParams.get('image') === 'adversarial', null, { timeout: TIMEOUT });
    await settled(page);
    const attackMs = Date.now() - t2;
    longest.attack = await page.evaluate(() => window.__longest);
    const outcome = await page.$eval('.attack-outcome', (e) => ({ ...e.dataset }));
    const advPredicted = Number(await page.getAttribute('#network .prediction', 'data-predicted'));
    console.log(`${tag} attack in ${attackMs} ms: ${JSON.stringify(outcome)}`);
    if (!(Number(outcome.linf) > 0 && Number(outcome.linf) <= epsilon + 1e-4)) fail(`${tag} attack left its budget ${epsilon}: ${outcome.linf}`);
    if (mustFool && outcome.success !== 'true') fail(`${tag} PGD-10 at eps ${epsilon} did not fool an undefended model`);
    if (advPredicted !== Number(outcome.predicted)) fail(`${tag} network view of the adversarial image predicts ${advPredicted}, the attack ${outcome.predicted}`);
    // Each influential neuron of the adversarial prediction shows its response to the real image.
    const before = await page.$$eval('#why .influence', (items) => items.map((i) => i.dataset.realActivation));
    if (!before.length || before.some((v) => v === '' || !Number.isFinite(Number(v)))) fail(`${tag} responses to the real image missing: ${before}`);
    await page.screenshot({ path: path.join(artifacts, `attack-${model}-${mode}.png`), fullPage: true });

    // Every state is a URL: a reload reproduces the same adversarial image and view.
    await page.reload({ waitUntil: 'load' });
    await settled(page);
    const again = await page.$eval('.attack-outcome', (e) => ({ ...e.dataset }));
    if (again.linf !== outcome.linf || again.predicted !== outcome.predicted) fail(`${tag} reload gave another attack: ${JSON.stringify(again)} vs ${JSON.stringify(outcome)}`);
    if ((await page.$eval('.neuron-view', (v) => [v.dataset.layer, v.dataset.channel])).join() !== `${layers[0][0]},3`) fail(`${tag} reload lost the neuron`);
    // Back: the real image again.
    await page.goBack();
    await page.waitForFunction(() => !new URL(location.href).searchParams.get('image'));
    await settled(page);
    if (Number(await page.getAttribute('#network .prediction', 'data-predicted')) !== expected[2]) fail(`${tag} back did not restore the real image's prediction`);

    if (process.env.ADVLENS_BIN) await checkAgainstCli(page, base, model, tag, lastLayer);
    const bundle = path.join(dist, 'models', model);
    const lab = withLab ? await attackLab(page, base, tag, epsilon, bundle) : null;
    if (withLab) {
      if (companion) await ensembleLab(page, base, tag, bundle, companion);
      await scrub(page, base, tag, epsilon, bundle, lastLayer);
      await page.screenshot({ path: path.join(artifacts, `attack-step-${model}-${mode}.png`), fullPage: true });
    }
    if (model.startsWith('concepts')) await conceptImage(page, base, model, tag);
    if (extras) await extras(page, base, tag);
    console.log(`${tag} longest main-thread task: ${JSON.stringify(longest)} ms; load ${loadMs} ms, neuron switch ${switchMs} ms, attack ${attackMs} ms`);
    return { traced, lab, loadMs, switchMs, attackMs, longest };
  } catch (e) {
    fail(`${tag} ${e.message}`);
    await page.screenshot({ path: path.join(artifacts, `failure-${model}-${mode}.png`), fullPage: true }).catch(() => {});
    return null;
  } finally {
    for (const e of errors) fail(`${tag} ${e}`);
    await done();
  }
}

// The page's numbers equal the CLI's on the same model and image (both explain sample 0's
// predicted class at the last layer).
async function checkAgainstCli(page, base, model, tag, layer) {
  await page.goto(`${base}?model=${model}&sample=0`);
  await settled(page);
  const shown = await influences(page);
  const cli = JSON.parse(execFileSync(process.env.ADVLENS_BIN, ['trace', '--model', path.join(dist, 'models', model), '--sample', '0', '--layer', layer, '--json'], { encoding: 'utf8' }));
  shown.forEach((s, i) => {
    const c = cli.influences[i];
    if (s.channel !== c.channel || !close_to(s.logitDrop, c.logit_drop) || !close_to(s.gradXAct, c.grad_x_act) || !close_to(s.probDrop, c.prob_drop)) {
      fail(`${tag} influence ${i}: page ${JSON.stringify(s)}, advlens trace ${JSON.stringify(c)}`);
    }
  });
  // Every neuron of the layer in the network view: its peak activation on this image equals the
  // CLI's (the network view's maps are computed by the page's engine, the CLI's natively).
  const peaks = await page.$$eval(`#network a.channel[data-layer="${layer}"]`, (cs) => cs.map((c) => [Number(c.dataset.channel), Number(c.dataset.max)]));
  const cliPeak = Object.fromEntries(cli.influences.map((c) => [c.channel, c.activation]));
  const off = peaks.filter(([k, v]) => !close_to(v, cliPeak[k]));
  if (peaks.length !== cli.influences.length || off.length) fail(`${tag} network view peaks of ${layer} differ from advlens trace for ${off.length} of ${peaks.length} neurons: ${JSON.stringify(off.slice(0, 3))}`);
  console.log(`${tag} ${shown.length} influences and the ${peaks.length} neurons' peak activations of ${layer} equal advlens trace --json to 1e-4`);
}

// Bad input never leads to a dead end: each is a message, and the page works.
async function badInputs(page, base, tag) {
  await page.goto(`${base}?model=nope&sample=999&layer=zzz&neuron=77&engine=bogus&image=x`);
  await settled(page);
  const notes = await page.textContent('#notices');
  for (const word of ['nope', '999', 'zzz', 'bogus', 'image=x']) if (!notes.includes(word)) fail(`${tag} no message about "${word}" in: ${notes}`);
  if (!(await page.$$('#gallery .sample')).length) fail(`${tag} a bad URL left no samples`);
  console.log(`${tag} a bad URL: ${notes.length} characters of notes, the page works`);

  for (const [file, word] of [['atlas.json', 'atlas.json'], ['real.png', 'real.png']]) {
    await page.route(`**/atlas/*/${file}`, (route) => route.fulfill({ status: 404, body: 'not found' }));
    await page.goto(`${base}?sample=1`);
    await settled(page);
    const note = await page.$eval('.neuron-view', (v) => v.querySelector('[data-atlas="broken"]')?.textContent ?? '');
    if (!note.includes(word)) fail(`${tag} a missing ${file} is not explained in the neuron view: "${note}"`);
    await page.unroute(`**/atlas/*/${file}`);
  }
  console.log(`${tag} a missing atlas and a missing sprite sheet are explained, the page works`);
}

// A long attack shows its progress and can be cancelled; the page keeps working after.
async function cancelAttack(page, base, tag) {
  await page.goto(`${base}?sample=6`);
  await settled(page);
  await page.fill('#attack-steps', '200');
  await page.click('#attack-button');
  await page.waitForFunction(() => /step [1-9]\d* of 200/.test(document.querySelector('#attack-progress-text')?.textContent ?? ''), null, { timeout: TIMEOUT });
  const progress = await page.textContent('#attack-progress-text');
  await page.click('button[data-action="cancel-attack"]');
  await page.waitForSelector('#attack-result[data-state="error"]', { timeout: 30_000 });
  const message = await page.textContent('#attack-result .problem');
  if (!/cancelled/.test(message)) fail(`${tag} a cancelled attack says "${message}"`);
  await settled(page);
  // The restarted worker has the model: a short attack still works.
  await page.fill('#attack-steps', '3');
  await page.click('#attack-button');
  await page.waitForFunction(() => new URL(location.href).searchParams.get('image') === 'adversarial', null, { timeout: TIMEOUT });
  await settled(page);
  if (await page.getAttribute('.attack-outcome', 'data-steps') !== '3') fail(`${tag} the attack after a cancel did not run`);
  console.log(`${tag} a 200-step attack showed "${progress}", was cancelled ("${message}"), and the next attack ran`);
}

// A concept-world model: a fresh image generated in the page, its part masks drawn on request,
// and neurons named by their best concept.
async function conceptImage(page, base, model, tag) {
  await page.goto(`${base}?model=${model}&concept=7`);
  await settled(page);
  const verdict = await page.textContent('#network .verdict');
  const boxes = await page.$$('#network input[data-part]');
  if (!boxes.length) fail(`${tag} a concept-world image offers no parts to show`);
  const pixels = () => page.$eval('#input-canvas', (c) => c.toDataURL());
  const plain = await pixels();
  await boxes[0].check();
  await page.waitForFunction(() => document.querySelector('#input-canvas').dataset.parts?.length > 0);
  if (await pixels() === plain) fail(`${tag} showing a part did not change the image`);
  await boxes[0].uncheck();
  await page.waitForFunction(() => document.querySelector('#input-canvas').dataset.parts === '');
  if (await pixels() !== plain) fail(`${tag} hiding the part did not restore the image`);
  // Another image from the button, and the neuron view names a concept.
  await page.click('#own summary');
  await page.click('button[data-action="new-concept"]');
  await page.waitForFunction(() => new URL(location.href).searchParams.get('concept') !== '7');
  await settled(page);
  const concept = await page.$eval('.neuron-view .numbers', (d) => d.textContent);
  if (!/best concept/.test(concept)) fail(`${tag} the neuron view names no concept`);
  console.log(`${tag} concept image 7: ${verdict} ${boxes.length} parts to show; the neuron view names concepts`);
}

// Keyboard only: Tab from the top of the page reaches every sample and every neuron.
async function keyboard(page, base, tag, layers, samples) {
  await page.goto(`${base}?sample=0`);
  await settled(page);
  const want = [...Array(samples).keys()].map((k) => `sample-${k}`).concat(layers.flatMap(([l, c]) => [...Array(c).keys()].map((k) => `n-${l}-${k}`)));
  const reached = new Set();
  for (let i = 0; i < want.length + 60 && reached.size < want.length; i++) {
    await page.keyboard.press('Tab');
    const key = await page.evaluate(() => document.activeElement?.dataset?.key);
    if (key && want.includes(key)) reached.add(key);
  }
  const missing = want.filter((k) => !reached.has(k));
  if (missing.length) fail(`${tag} Tab never reaches ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`);
  else console.log(`${tag} Tab reaches all ${samples} samples and ${want.length - samples} neurons`);
}

// The visitor's own images: a drawing, an upload, and uploads the page must refuse.
async function ownImages(page, base, tag) {
  await page.goto(`${base}?sample=0`);
  await settled(page);
  await page.click('#own summary');
  const box = await page.$eval('#draw-canvas', (c) => { const r = c.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height }; });
  // A vertical stroke down the middle: a "1".
  await page.mouse.move(box.x + box.w * 0.5, box.y + box.h * 0.15);
  await page.mouse.down();
  for (let i = 1; i <= 10; i++) await page.mouse.move(box.x + box.w * 0.5, box.y + box.h * (0.15 + 0.07 * i));
  await page.mouse.up();
  await page.click('button[data-action="use-drawing"]');
  await page.waitForFunction(() => new URL(location.href).searchParams.has('pixels'));
  await settled(page);
  const drawn = await page.textContent('#network .verdict');
  if (!/^The model says \S+ \(/.test(drawn) || /right|wrong/.test(drawn)) fail(`${tag} a drawing's verdict: "${drawn}"`);
  if (await page.$('#gallery [aria-current="true"]')) fail(`${tag} a sample stays marked current while showing a drawing`);
  // The drawing is in the URL: a reload shows the same prediction.
  await page.reload();
  await settled(page);
  if (await page.textContent('#network .verdict') !== drawn) fail(`${tag} a reload changed the drawing's prediction`);
  console.log(`${tag} drawing: ${drawn}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advlens-upload-'));
  const sheet = path.join(dist, 'models', 'mnist-small', 'atlas', 'relu2', 'real.png');
  const huge = path.join(dir, 'huge.png');
  const ihdr = Buffer.alloc(33);
  Buffer.from('\x89PNG\r\n\x1a\n', 'latin1').copy(ihdr, 0);
  ihdr.writeUInt32BE(13, 8); ihdr.write('IHDR', 12, 'latin1'); ihdr.writeUInt32BE(20000, 16); ihdr.writeUInt32BE(20000, 20);
  fs.writeFileSync(huge, ihdr);
  const text = path.join(dir, 'notes.png');
  fs.writeFileSync(text, 'this is not an image');
  await page.setInputFiles('#upload', sheet);
  await page.waitForFunction(() => /your image/.test(document.querySelector('#notices')?.textContent ?? ''));
  await settled(page);
  const used = await page.textContent('#notices');
  if (!/scaled to 28×28/.test(used)) fail(`${tag} an upload's note: ${used}`);
  for (const [file, want] of [[huge, '20000×20000'], [text, 'not an image']]) {
    const before = page.url();
    await page.setInputFiles('#upload', file);
    await page.waitForFunction((w) => (document.querySelector('#notices')?.textContent ?? '').includes(w), want);
    if (page.url() !== before) fail(`${tag} a refused upload (${path.basename(file)}) changed the page state`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(`${tag} an upload is scaled and shown; a 20000×20000 PNG and a non-image are refused with a message`);
}

// A course page (served from the same sub-path) embeds three views in iframes: each shows
// its one view, ready, and nothing else.
async function course(base, tag) {
  const { page, errors, done } = await browser('cpu', { width: 800, height: 900 });
  try {
    await page.goto(`${base}course-example.html`);
    for (const [id, view] of [['embed-network', 'network'], ['embed-why', 'why'], ['embed-attack', 'attack']]) {
      const frame = await (await page.waitForSelector(`#${id}`)).contentFrame();
      await frame.waitForSelector('#status[data-state="ready"]', { timeout: TIMEOUT });
      const shown = await frame.evaluate(() => ({
        embed: document.body.dataset.embed,
        visible: [...document.querySelectorAll('header, #intro, #samples, #network, #why, #neuron, #attack, #model-card')].filter((e) => e.offsetParent !== null).map((e) => e.id || e.tagName.toLowerCase()),
        wide: document.documentElement.scrollWidth > innerWidth,
      }));
      if (shown.embed !== view || JSON.stringify(shown.visible) !== JSON.stringify([view]) || shown.wide) fail(`${tag} iframe ${id}: ${JSON.stringify(shown)}`);
    }
    await page.screenshot({ path: path.join(artifacts, 'course-example.png'), fullPage: true });
    console.log(`${tag} the course page's three embeds each show their view`);
  } catch (e) {
    fail(`${tag} ${e.message}`);
  } finally {
    for (const e of errors) fail(`${tag} ${e}`);
    await done();
  }
}

async function phone(base, tag) {
  const { page, errors, done } = await browser('cpu', { width: 390, height: 844 });
  try {
    await page.goto(`${base}?neuron=4`);
    await settled(page);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    if (width > 390) fail(`${tag} the phone layout scrolls sideways: ${width} px wide`);
    await page.screenshot({ path: path.join(artifacts, 'explorer-phone.png'), fullPage: true });
    console.log(`${tag} phone layout ${width} px wide`);
  } catch (e) {
    fail(`${tag} ${e.message}`);
  } finally {
    for (const e of errors) fail(`${tag} ${e}`);
    await done();
  }
}

fs.mkdirSync(artifacts, { recursive: true });
const catalog = JSON.parse(fs.readFileSync(path.join(dist, 'models', 'index.json'), 'utf8'));
const server = await serve(dist, PREFIX);
const base = `http://127.0.0.1:${server.address().port}${PREFIX}`;
try {
  // ADVLENS_E2E_ONLY=id,id runs only those models (while developing; the suite runs all).
  const only = process.env.ADVLENS_E2E_ONLY?.split(',');
  for (const [k, entry] of catalog.entries()) {
    if (only && !only.includes(entry.id)) continue;
    const dir = path.join(dist, 'models', entry.id);
    const samples = JSON.parse(fs.readFileSync(path.join(dir, 'samples.json'), 'utf8'));
    const spec = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    const expected = samples.samples.map((s) => s.reference.predicted);
    // The feature layers: ReLUs before the classifier, with their channel counts.
    const layers = [];
    let channels = spec.input.channels;
    for (const n of spec.nodes) {
      if (['flatten', 'global_avg_pool', 'linear'].includes(n.op)) break;
      if (n.op === 'conv2d') channels = n.out_channels;
      if (n.op === 'relu') layers.push([n.name, channels]);
    }
    const atlases = Object.fromEntries(entry.atlas.map((l) => [l, JSON.parse(fs.readFileSync(path.join(dir, 'atlas', l, 'atlas.json'), 'utf8'))]));
    // The page attacks at the model's training epsilon, else at the one it was evaluated at,
    // else 0.2; an undefended model must be fooled, an adversarially trained one may resist.
    const evaluated = Object.keys(spec.provenance?.robust_accuracy ?? {}).map((k) => Number(k.split('@')[1])).find((e) => e > 0 && e <= 1);
    const epsilon = spec.provenance?.epsilon ?? evaluated ?? 0.2;
    // Another model of the same data, for the ensemble attack.
    const companion = catalog.find((e) => e.id !== entry.id && e.dataset && e.dataset === entry.dataset)?.id;
    const options = { expected, epsilon, mustFool: !spec.provenance?.epsilon, atlases, layers, companion, hierarchy: spec.hierarchy };
    const extras = async (page, base, tag) => {
      await badInputs(page, base, tag);
      await ownImages(page, base, tag);
      await keyboard(page, base, tag, layers, expected.length);
      await cancelAttack(page, base, tag);
      await rapidClicks(page, base, tag, catalog[1].id);
      await share(page, base, tag);
      await ownModels(page, base, tag, { dist, expected });
    };
    const gpu = await check(base, 'webgpu', entry.id, { ...options, extras: k === 0 ? extras : null, withLab: k === 0 });
    if (k === 0) {
      const cpu = await check(base, 'cpu', entry.id, { ...options, withLab: true });
      // The two engines make the same adversarial images.
      if (gpu?.lab && cpu?.lab) for (const name of Object.keys(gpu.lab)) {
        const [g, c] = [gpu.lab[name], cpu.lab[name]];
        if (g.predicted !== c.predicted || !close_to(Number(g.linf), Number(c.linf)) || !close_to(Number(g.l2), Number(c.l2), 1e-3)) fail(`[${entry.id}] ${name}: WebGPU ${JSON.stringify(g)}, CPU ${JSON.stringify(c)}`);
      }
      // The two engines trace the same numbers.
      if (gpu && cpu) gpu.traced.forEach((g, i) => {
        const c = cpu.traced[i];
        if (g.channel !== c.channel || !close_to(g.logitDrop, c.logitDrop)) fail(`[${entry.id}] influence ${i}: WebGPU ${JSON.stringify(g)}, CPU ${JSON.stringify(c)}`);
      });
      await phone(base, `[${entry.id} phone]`);
      await course(base, '[course page]');
      await deviceLoss(base, { dist, model: entry.id, artifacts });
    }
    // The paper's comparison, standard vs consistent, on both engines.
    const partner = { 'fashion-standard': 'fashion-consistent' }[entry.id];
    if (partner && catalog.some((e) => e.id === partner)) {
      for (const mode of ['webgpu', 'cpu']) await compareModels(base, mode, { dist, a: entry.id, b: partner, other: catalog[0].id, epsilon, artifacts });
    }
  }
} finally {
  await close(server);
}
if (process.exitCode) console.error('explorer end-to-end test FAILED');
else console.log('explorer end-to-end test passed');
