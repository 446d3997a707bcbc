// A lost GPU device during an attack (destroyed from the test through the page's hook
// `simulateDeviceLoss(step)`): the attack completes on the CPU engine with the image
// `advlens perturb` makes, the page says what happened, and it keeps working on the CPU engine.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { browser, f32s, fail, linf, settled, TIMEOUT } from './common.mjs';

export async function deviceLoss(base, { dist, model, artifacts }) {
  const tag = '[device loss]';
  const { page, errors, done } = await browser('webgpu');
  try {
    await page.goto(`${base}?model=${model}&sample=2&attack=pgd&eps=0.2&steps=10&seed=3`);
    await settled(page);
    if (await page.getAttribute('#engine', 'data-engine') !== 'webgpu') throw new Error('the page does not run on WebGPU');
    if (!(await page.evaluate(() => window.wasmBindings.simulateDeviceLoss(3)))) throw new Error('the device-loss hook did not arm');
    await page.click('#attack-button');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('image') === 'adversarial', null, { timeout: TIMEOUT });
    await settled(page);
    const engine = await page.$eval('#engine', (e) => ({ engine: e.dataset.engine, text: e.textContent }));
    const notes = await page.textContent('#notices');
    if (engine.engine !== 'cpu' || !/GPU failed/.test(engine.text)) fail(`${tag} after the loss the engine badge says ${JSON.stringify(engine)}`);
    if (!/CPU engine/.test(notes)) fail(`${tag} no notice of the move to the CPU engine: "${notes}"`);
    const shown = await page.$eval('#step-says', (e) => ({ ...e.dataset }));
    if (process.env.ADVLENS_BIN) {
      const cli = JSON.parse(execFileSync(process.env.ADVLENS_BIN, ['perturb', '--model', path.join(dist, 'models', model), '--sample', '2', '--attack', 'pgd', '--epsilon', '0.2', '--steps', '10', '--seed', '3', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
      const d = linf(f32s(shown.pixels), cli.image);
      if (d > 1e-4) fail(`${tag} the attack finished on the CPU engine differs from advlens perturb by ${d}`);
    }
    // The page goes on, on the CPU engine: another image, its trace.
    await page.click('#gallery a[data-key="sample-4"]');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('sample') === '4');
    await settled(page);
    if ((await page.$$('#why .influence')).length === 0) fail(`${tag} no trace after the loss`);
    await page.screenshot({ path: path.join(artifacts, 'device-loss.png'), fullPage: false });
    console.log(`${tag} the GPU device destroyed at step 3 of an attack: the attack finished on the CPU engine (${shown.step} steps, equal to advlens perturb), the badge says "${engine.text.slice(0, 80)}…", the page works`);
  } catch (e) {
    fail(`${tag} ${e.message}`);
    await page.screenshot({ path: path.join(artifacts, 'failure-device-loss.png'), fullPage: true }).catch(() => {});
  } finally {
    for (const e of errors) fail(`${tag} ${e}`);
    await done();
  }
}
