// The attack lab against `advlens perturb` (the same attacks, run natively on the CPU engine):
// every attack of the page, from its URL, makes the image the command makes with the same
// numbers and seed; the step slider's step k is the command's attack cut at k steps; and the
// neurons aligned before / after the attack carry the numbers of `advlens trace`.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { close_to, f32s, fail, influences, linf, query, settled } from './common.mjs';

// `advlens perturb --json` on sample 2 of the bundle, or null without ADVLENS_BIN.
function perturb(bundle, args) {
  if (!process.env.ADVLENS_BIN) return null;
  const out = execFileSync(process.env.ADVLENS_BIN, ['perturb', '--model', bundle, '--sample', '2', '--json', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out);
}

const shown = (page) => page.$eval('#step-says', (e) => ({ ...e.dataset }));

// Pixels that moved differently: a gradient component near zero can take the other sign on
// another engine, which moves that pixel by a whole step. Reported with the L-inf distance.
function compare(tag, what, page, cli) {
  const p = f32s(page.pixels);
  const d = linf(p, cli.image);
  const off = p.filter((v, i) => Math.abs(v - cli.image[i]) > 1e-4).length;
  if (d > 1e-4) fail(`${tag} ${what}: the page's image differs from advlens perturb's by ${d.toExponential(2)} in L-inf (${off} of ${p.length} pixels)`);
  if (Number(page.predicted) !== cli.predicted) fail(`${tag} ${what}: the page predicts ${page.predicted}, advlens perturb ${cli.predicted}`);
  return d;
}

// Each attack from its URL: the outcome is sane, and the image is advlens perturb's. Returns the
// outcomes, to compare the two engines.
export async function attackLab(page, base, tag, epsilon, bundle) {
  const runs = [
    ['pgd', `attack=pgd&eps=${epsilon}&steps=10&seed=3`, ['--attack', 'pgd', '--epsilon', `${epsilon}`, '--steps', '10', '--seed', '3'],
      (o) => Number(o.steps) === 10 && Number(o.linf) <= epsilon + 1e-4],
    ['mi-fgsm targeted', `attack=mi-fgsm&target=3&eps=${epsilon}&steps=10`, ['--attack', 'mi-fgsm', '--target', '3', '--epsilon', `${epsilon}`, '--steps', '10'],
      (o) => o.success === 'true' && o.predicted === '3' && o.target === '3' && Number(o.linf) <= epsilon + 1e-4],
    ['pgd-l2', 'attack=pgd-l2&eps=2&steps=20&seed=5', ['--attack', 'pgd-l2', '--epsilon', '2', '--steps', '20', '--seed', '5'],
      (o) => Number(o.l2) <= 2 + 1e-4 && Number(o.steps) === 20],
    ['fgsm', `attack=fgsm&eps=${epsilon}`, ['--attack', 'fgsm', '--epsilon', `${epsilon}`],
      (o) => Number(o.steps) === 1 && Number(o.linf) <= epsilon + 1e-4],
    ['pgd with a step size', `eps=${epsilon}&steps=5&stepsize=0.01&seed=8`, ['--attack', 'pgd', '--epsilon', `${epsilon}`, '--steps', '5', '--step-size', '0.01', '--seed', '8'],
      (o) => Number(o.steps) === 5 && Number(o.linf) <= epsilon + 1e-4],
    ['least-likely', `attack=least-likely&eps=${epsilon}&steps=10`, ['--attack', 'least-likely', '--epsilon', `${epsilon}`, '--steps', '10'],
      (o) => o.target !== '' && Number(o.linf) <= epsilon + 1e-4],
  ];
  const outcomes = {};
  const distances = [];
  for (const [name, q, args, ok] of runs) {
    await page.goto(`${base}?sample=2&image=adversarial&${q}`);
    await settled(page);
    const o = await page.$eval('.attack-outcome', (e) => ({ ...e.dataset }));
    if (!ok(o)) fail(`${tag} ${name}: ${JSON.stringify(o)}`);
    outcomes[name] = o;
    const cli = perturb(bundle, args);
    if (cli) {
      distances.push(`${name} ${compare(tag, name, await shown(page), cli).toExponential(1)}`);
      if (String(cli.success) !== o.success) fail(`${tag} ${name}: the page says success ${o.success}, advlens perturb ${cli.success}`);
    }
  }
  // The controls show the URL's attack, and a form with a bad value says so instead of attacking.
  if (await page.$eval('#attack-kind', (e) => e.value) !== 'least-likely') fail(`${tag} the attack controls do not show the URL's attack`);
  await page.fill('#attack-steps', '0');
  await page.selectOption('#attack-kind', 'pgd');
  const before = page.url();
  await page.click('#attack-button');
  await page.waitForFunction(() => /steps/.test(document.querySelector('#notices')?.textContent ?? ''));
  if (page.url() !== before) fail(`${tag} an attack with 0 steps changed the page`);
  console.log(`${tag} attack lab: ${Object.entries(outcomes).map(([k, o]) => `${k} -> ${o.predicted} (success ${o.success})`).join('; ')}`);
  if (distances.length) console.log(`${tag} each attack's image vs advlens perturb, L-inf: ${distances.join(', ')}`);
  return outcomes;
}

// The step slider, by keyboard: step 4 of 10 is shown, in the URL, equals the command's attack
// cut at 4 steps with the same step size, and the views follow; the slider keeps the focus. Then
// the neurons aligned before / after: "before" is advlens trace on the real image.
export async function scrub(page, base, tag, epsilon, bundle, layer) {
  const url = `${base}?sample=2&image=adversarial&attack=pgd&eps=${epsilon}&steps=10&seed=3`;
  await page.goto(url);
  await settled(page);
  if ((await shown(page)).step !== '10') fail(`${tag} the attack shows step ${(await shown(page)).step}, not its last`);
  await page.focus('#attack-step');
  await page.keyboard.press('Home');
  for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowRight');
  await page.waitForFunction(() => document.querySelector('#step-says')?.dataset.step === '4');
  await settled(page);
  const step = await shown(page);
  if (query(page).get('step') !== '4') fail(`${tag} the URL at step 4: ${page.url()}`);
  if (await page.evaluate(() => document.activeElement?.id) !== 'attack-step') fail(`${tag} the step slider lost the focus while scrubbing`);
  const net = await page.getAttribute('#network .prediction', 'data-predicted');
  if (net !== step.predicted) fail(`${tag} at step 4 the network view predicts ${net}, the attack panel ${step.predicted}`);
  const full = perturb(bundle, ['--attack', 'pgd', '--epsilon', `${epsilon}`, '--steps', '10', '--seed', '3']);
  if (full) {
    const cut = perturb(bundle, ['--attack', 'pgd', '--epsilon', `${epsilon}`, '--steps', '4', '--step-size', `${full.spec.step_size}`, '--seed', '3']);
    compare(tag, "step 4 of 10", step, cut);
  }
  // A reload shows the same step (the URL is the state).
  await page.reload();
  await settled(page);
  if ((await shown(page)).pixels !== step.pixels) fail(`${tag} a reload at step 4 shows another image`);

  await page.waitForSelector('.aligned[data-state="done"]');
  const explained = Number(await page.getAttribute('#why-body [data-class]', 'data-class'));
  const rows = await page.$$eval('.aligned .shift', (rs) => rs.map((r) => ({ channel: Number(r.dataset.channel), before: Number(r.dataset.before), after: Number(r.dataset.after) })));
  const listed = Object.fromEntries((await influences(page)).map((i) => [i.channel, i.logitDrop]));
  if (rows.length < 2) fail(`${tag} ${rows.length} neurons aligned before / after`);
  if (rows.some((r, i) => i > 0 && Math.abs(r.after - r.before) > Math.abs(rows[i - 1].after - rows[i - 1].before) + 1e-6)) fail(`${tag} aligned neurons are not sorted by change`);
  for (const r of rows) if (r.channel in listed && !close_to(r.after, listed[r.channel])) fail(`${tag} neuron ${r.channel}: aligned "after" ${r.after}, listed ${listed[r.channel]}`);
  if (process.env.ADVLENS_BIN) {
    const real = JSON.parse(execFileSync(process.env.ADVLENS_BIN, ['trace', '--model', bundle, '--sample', '2', '--layer', layer, '--class', `${explained}`, '--json'], { encoding: 'utf8' }));
    const before = Object.fromEntries(real.influences.map((i) => [i.channel, i.logit_drop]));
    for (const r of rows) if (!close_to(r.before, before[r.channel])) fail(`${tag} neuron ${r.channel}: aligned "before" ${r.before}, advlens trace on the real image ${before[r.channel]}`);
  }
  const gained = rows.filter((r) => r.after > r.before).length;
  console.log(`${tag} step slider: step 4 of 10 shown, in the URL and equal to advlens perturb; ${rows.length} neurons aligned (${gained} gained, ${rows.length - gained} lost) for class ${explained}`);
}

// A triple click and more clicks while an attack runs, then a model switch mid-attack: no panic,
// the attack stops, the new model shows without an error from the old attack, and attacks work.
export async function rapidClicks(page, base, tag, otherModel) {
  await page.goto(`${base}?sample=5&steps=200`);
  await settled(page);
  await page.click('#attack-button', { clickCount: 3 });
  await page.click('#attack-button', { force: true, timeout: 2000 }).catch(() => {});
  await page.waitForFunction(() => /step [1-9]\d* of 200/.test(document.querySelector('#attack-progress-text')?.textContent ?? ''), null, { timeout: 120_000 });
  const t0 = Date.now();
  await page.selectOption('#model', otherModel);
  await page.waitForFunction((m) => new URL(location.href).searchParams.get('model') === m, otherModel);
  await settled(page);
  const switched = Date.now() - t0;
  const state = await page.getAttribute('#attack-result', 'data-state');
  if (state !== 'idle') fail(`${tag} after a model switch mid-attack the attack panel is "${state}": ${await page.textContent('#attack-result')}`);
  if (await page.$eval('#attack-button', (b) => b.disabled)) fail(`${tag} the attack button stays disabled after a model switch`);
  await page.fill('#attack-steps', '3');
  await page.click('#attack-button');
  await page.waitForFunction(() => new URL(location.href).searchParams.get('image') === 'adversarial', null, { timeout: 120_000 });
  await settled(page);
  console.log(`${tag} triple click and a model switch during a 200-step attack: ${otherModel} shown ${switched} ms after the switch, no error, the next attack runs`);
}

// The paper's ensemble attack across the page's models, against `advlens perturb --attack ensemble`
// with `--with` (companion attacked together) and `--held-out` (companion held out). Adam makes
// this attack chaotic where the gradient vanishes: natively, a 1e-6 change of one input pixel
// moves its 30-step image by up to 0.2 in L-inf (its first step already by 0.01 — near-zero
// gradient components take full-size first steps), while the losses and probabilities barely
// move. So the images are compared by what they do: the same predictions and verdicts, and the
// companion's probabilities within 1e-3; the image distance is reported, not judged.
// Then the form: choosing the ensemble shows the models to tick, and a tick lands in the URL.
export async function ensembleLab(page, base, tag, bundle, companion) {
  const other = path.join(path.dirname(bundle), companion);
  const common = 'attack=ensemble&eps=0.3&steps=30&target=4';
  const args = ['--attack', 'ensemble', '--epsilon', '0.3', '--steps', '30', '--target', '4'];
  const lines = [];
  for (const [name, q, extra, list, attacked] of [
    ['together', `${common}&with=${companion}`, ['--with', other], 'ensemble', 'true'],
    ['held out', common, ['--held-out', other], 'transfer', 'false'],
  ]) {
    await page.goto(`${base}?sample=2&image=adversarial&${q}`);
    await settled(page);
    const item = await page.$eval(`.companions li[data-id="${companion}"]`, (e) => ({ ...e.dataset })).catch(() => null);
    if (!item) { fail(`${tag} ensemble ${name}: ${companion} is not listed under the result`); continue; }
    if (item.attacked !== attacked) fail(`${tag} ensemble ${name}: ${companion} listed as attacked=${item.attacked}`);
    const o = await page.$eval('.attack-outcome', (e) => ({ ...e.dataset }));
    if (o.target !== '4' || Number(o.linf) > 0.3 + 1e-4 || Number(o.steps) !== 30) fail(`${tag} ensemble ${name}: ${JSON.stringify(o)}`);
    const cli = perturb(bundle, [...args, ...extra]);
    if (!cli) continue;
    const mine = await shown(page);
    const d = linf(f32s(mine.pixels), cli.image);
    if (Number(mine.predicted) !== cli.predicted || o.success !== String(cli.success)) fail(`${tag} ensemble ${name}: the page predicts ${mine.predicted} (success ${o.success}), advlens perturb ${cli.predicted} (${cli.success})`);
    const theirs = cli[list][0];
    const probs = item.probabilities.split(',').map(Number);
    const dp = linf(probs, theirs.probabilities);
    if (dp > 1e-3) fail(`${tag} ensemble ${name}: ${companion}'s probabilities differ from advlens perturb's by ${dp}`);
    if (item.fooled !== String(theirs.fooled)) fail(`${tag} ensemble ${name}: the page says ${companion} fooled=${item.fooled}, advlens perturb ${theirs.fooled}`);
    lines.push(`${name}: image ${d.toExponential(1)}, ${companion} probabilities ${dp.toExponential(1)}, predicts ${item.predicted} (fooled ${item.fooled})`);
  }
  if (lines.length) console.log(`${tag} ensemble attack vs advlens perturb: ${lines.join('; ')}`);
  // The form: the models to tick appear with the ensemble attack, and a tick lands in the URL.
  await page.goto(`${base}?sample=2`);
  await settled(page);
  if (await page.isVisible('#attack-with')) fail(`${tag} the ensemble's models show for PGD`);
  await page.selectOption('#attack-kind', 'ensemble');
  await page.check(`#attack-with-${companion}`);
  await page.fill('#attack-steps', '5');
  await page.click('#attack-button');
  await page.waitForFunction(() => new URL(location.href).searchParams.get('image') === 'adversarial', null, { timeout: 120_000 });
  await settled(page);
  if (query(page).get('with') !== companion || query(page).get('attack') !== 'ensemble') fail(`${tag} the ticked model is not in the URL: ${page.url()}`);
}
