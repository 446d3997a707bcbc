// Ratios advlens / peer per round of a multi-round browser benchmark (run-bench.mjs --rounds N),
// and their median and range over the rounds: engines run one after another, so a load that
// comes and goes hits them unequally in one round; the median over rounds is the number to quote.
//   node tests/bench/peer-ratios.mjs target/peer-bench/results-advlens.json 'advlens cpu' 'ort wasm 1t'
import fs from 'fs';

const [file, mine, peer] = process.argv.slice(2);
if (!file || !mine || !peer) throw new Error('usage: peer-ratios.mjs RESULTS.json ENGINE PEER');
const { results } = JSON.parse(fs.readFileSync(file, 'utf8'));
const metrics = {
  'forward b1': (r) => r.forward?.['1']?.median,
  'forward b64': (r) => r.forward?.['64']?.median,
  'forward + input gradient b1': (r) => r.grad?.median,
  'PGD-20': (r) => r.pgd?.median,
};
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const rows = [`| model | call | ${mine} ms (median of rounds) | ${peer} ms | ratio, median of rounds | range | rounds |`, '|---|---|---|---|---|---|---|'];
for (const model of [...new Set(results.map((r) => r.model))]) {
  const of = (name) => results.filter((r) => r.model === model && r.name === name);
  for (const [call, get] of Object.entries(metrics)) {
    const pairs = of(mine).map((a) => [get(a), get(of(peer).find((b) => b.round === a.round) ?? {})]).filter(([a, b]) => a > 0 && b > 0);
    if (!pairs.length) continue;
    const ratios = pairs.map(([a, b]) => a / b);
    const f = (x) => x.toFixed(2);
    rows.push(`| ${model} | ${call} | ${median(pairs.map((p) => p[0])).toPrecision(3)} | ${median(pairs.map((p) => p[1])).toPrecision(3)} | **${f(median(ratios))}** | ${f(Math.min(...ratios))}-${f(Math.max(...ratios))} | ${pairs.length} |`);
  }
}
console.log(rows.join('\n'));
