// Compare: a standard and a consistent model side by side. On the real image each predicts what
// libtorch predicted; on the adversarial image made for the first, the second's prediction and
// "transfers or not" equal `advlens perturb --held-out`, and its own attack under the same
// settings equals `advlens perturb` on it. Incompatible models are refused with a reason.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { browser, close_to, fail, query, settled, TIMEOUT } from './common.mjs';

const sides = (page) => page.$$eval('#compare-view .side', (ss) => ss.map((s) => ({ ...s.dataset })));
const done = (page) => page.waitForSelector('#compare-view[data-state="done"], #compare-view[data-state="error"]', { timeout: TIMEOUT });

export async function compareModels(base, mode, { dist, a, b, other, epsilon, artifacts }) {
  const tag = `[compare ${a} / ${b} ${mode}]`;
  const { page, errors, done: close } = await browser(mode);
  const bundle = (id) => path.join(dist, 'models', id);
  const perturb = (model, extra) => JSON.parse(execFileSync(process.env.ADVLENS_BIN,
    ['perturb', '--model', bundle(model), '--sample', '2', '--attack', 'pgd', '--epsilon', `${epsilon}`, '--steps', '10', '--seed', '3', '--json', ...extra], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  try {
    await page.goto(`${base}?model=${a}&sample=2&compare=${b}`);
    await settled(page);
    await done(page);
    const reference = (id) => JSON.parse(fs.readFileSync(path.join(bundle(id), 'samples.json'), 'utf8')).samples[2].reference.predicted;
    const real = await sides(page);
    if (real.length !== 2 || Number(real[0].predicted) !== reference(a) || Number(real[1].predicted) !== reference(b)) fail(`${tag} on the real image the sides predict ${JSON.stringify(real.map((s) => s.predicted))}, libtorch ${reference(a)}, ${reference(b)}`);
    if ((await page.$$('#compare-view .side .compare-neuron .patch')).length === 0) fail(`${tag} the compared neurons show no atlas patches`);

    await page.goto(`${base}?model=${a}&sample=2&image=adversarial&attack=pgd&eps=${epsilon}&steps=10&seed=3&compare=${b}`);
    await settled(page);
    await done(page);
    const [sa, sb] = await sides(page);
    if (process.env.ADVLENS_BIN) {
      const made = perturb(a, ['--held-out', bundle(b)]);
      const t = made.transfer[0];
      if (Number(sa.predicted) !== made.predicted) fail(`${tag} the attacked model predicts ${sa.predicted}, advlens perturb ${made.predicted}`);
      if (Number(sb.predicted) !== t.predicted || !close_to(Number(sb.probability), t.probabilities[t.predicted])) fail(`${tag} transfer: the page's ${b} says ${sb.predicted} (${sb.probability}), advlens perturb --held-out ${t.predicted} (${t.probabilities[t.predicted]})`);
      if (sb.transfer !== String(t.fooled)) fail(`${tag} transfer verdict ${sb.transfer}, advlens perturb ${t.fooled}`);
      const own = perturb(b, []);
      if (Number(sb.ownPredicted) !== own.predicted || sb.ownSuccess !== String(own.success)) fail(`${tag} ${b}'s own attack: page ${sb.ownPredicted} (${sb.ownSuccess}), advlens perturb ${own.predicted} (${own.success})`);
      console.log(`${tag} transfer: ${a}'s adversarial image makes ${b} say ${t.predicted} (fooled ${t.fooled}); ${b}'s own attack: ${own.predicted} (success ${own.success}) — equal to advlens perturb`);
    }
    await page.screenshot({ path: path.join(artifacts, `compare-${mode}.png`), fullPage: true });
    // Swap: explore the other model, compared with the first.
    await page.click('#compare-view a[data-key="compare-swap"]');
    await page.waitForFunction((want) => new URL(location.href).searchParams.get('model') === want, b);
    await settled(page);
    if (query(page).get('compare') !== a) fail(`${tag} after the swap the URL is ${page.url()}`);
    // Models that cannot see the same images are refused with a reason.
    await page.goto(`${base}?model=${a}&compare=${other}`);
    await settled(page);
    await done(page);
    const problem = await page.textContent('#compare-view');
    if (!/different classes|takes/.test(problem)) fail(`${tag} comparing with ${other}: "${problem.slice(0, 200)}"`);
    console.log(`${tag} real image: libtorch's predictions on both sides; swap works; ${other} is refused with a reason`);
  } catch (e) {
    fail(`${tag} ${e.message}`);
    await page.screenshot({ path: path.join(artifacts, `failure-compare-${mode}.png`), fullPage: true }).catch(() => {});
  } finally {
    for (const e of errors) fail(`${tag} ${e}`);
    await close();
  }
}
