// Fails when a browser benchmark run (tests/bench/browser-peers.sh) produced a wrong result:
// correctness, not time. For every configuration whose name matches the filter it requires
//   - no error, and every forward batch within 1e-4 of the harness's float64 reference logits,
//   - the input gradient and the loss within 1e-4 of the reference (when the engine has one),
//   - PGD's adversarial image inside the eps-ball and [0, 1], its loss within 5% of the
//     reference PGD's (sign steps may flip where a gradient entry is near zero; seen: 0.6%).
//   node tests/bench/check-peer-results.mjs target/peer-bench/results-advlens.json [name filter]
import fs from 'node:fs';

const [file, filter = 'advlens'] = process.argv.slice(2);
const { results } = JSON.parse(fs.readFileSync(file, 'utf8'));
const checked = results.filter((r) => r.name.includes(filter));
const problems = [];
for (const r of checked) {
  const at = `${r.model} / ${r.name}`;
  if (r.error) { problems.push(`${at}: ${r.error.split('\n')[0]}`); continue; }
  for (const [batch, f] of Object.entries(r.forward || {})) {
    if (!f.ok) problems.push(`${at}: forward at batch ${batch} differs from the reference by ${f.maxabs_err} (> 1e-4)`);
  }
  if (r.grad && !r.grad.ok) problems.push(`${at}: input gradient off by ${r.grad.maxabs_err}, loss by ${r.grad.loss_err} (> 1e-4)`);
  if (r.pgd) {
    if (!r.pgd.in_ball) problems.push(`${at}: PGD left the eps-ball or [0, 1]`);
    const ref = r.pgd.ref_adv_loss;
    if (!(Math.abs(r.pgd.adv_loss - ref) <= 0.05 * Math.abs(ref))) problems.push(`${at}: PGD's adversarial loss ${r.pgd.adv_loss} is not within 5% of the reference ${ref}`);
  }
}
if (checked.length === 0) problems.push(`no configuration named like "${filter}" in ${file}`);
for (const r of checked.filter((r) => !r.error)) {
  console.log(`${r.model.padEnd(5)} ${r.name.padEnd(16)} forward ${Object.entries(r.forward).map(([b, f]) => `b${b} ${f.maxabs_err.toExponential(1)}`).join(', ')}` +
    (r.grad ? `; gradient ${r.grad.maxabs_err.toExponential(1)}` : '') + (r.pgd ? `; PGD in ball: ${r.pgd.in_ball}, adv loss ${r.pgd.adv_loss} (ref ${r.pgd.ref_adv_loss})` : ''));
}
if (problems.length) {
  console.error(`browser benchmark results that differ from the reference:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`${checked.length} configurations agree with the reference outputs`);
