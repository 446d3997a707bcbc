// advlens adapter for the browser peer benchmark (../shared/bench/peers), installed as
// adapters/advlens.mjs by tests/bench/browser-peers.sh. It turns the harness's manifest and
// weights into an advlens bundle (model.json + safetensors, built here) and runs it on the
// shared engines through the web crate's `Session` API (device=cpu or device=webgpu).
import init, { Session } from '../advlens-pkg/advlens_web.js';

let session, C, H, W, K;

// The harness's net: [conv3x3/pad1 - relu - maxpool2] per conv, flatten, fc - relu - fc.
function bundleFor(manifest, weights) {
  const [c, h, w] = manifest.input_shape;
  const nodes = [];
  const tensors = [];  // [name, shape, Float32Array]
  const param = (n) => {
    const p = manifest.params.find((q) => q.name === n);
    return [p.shape, weights.subarray(p.offset, p.offset + p.length)];
  };
  let prev = 'input', cin = c, side = h;
  manifest.convs.forEach((cout, i) => {
    nodes.push({ name: `conv${i}`, inputs: [prev], op: 'conv2d', in_channels: cin, out_channels: cout, kernel: 3, stride: 1, padding: 1 });
    nodes.push({ name: `relu${i}`, inputs: [`conv${i}`], op: 'relu' });
    nodes.push({ name: `pool${i}`, inputs: [`relu${i}`], op: 'max_pool2d', kernel: 2, stride: 2, padding: 0 });
    tensors.push([`conv${i}.weight`, ...param(`conv${i}.W`)], [`conv${i}.bias`, ...param(`conv${i}.B`)]);
    prev = `pool${i}`; cin = cout; side /= 2;
  });
  nodes.push({ name: 'flatten', inputs: [prev], op: 'flatten' });
  nodes.push({ name: 'fc0', inputs: ['flatten'], op: 'linear', in_features: manifest.flat, out_features: manifest.hidden });
  nodes.push({ name: 'fc0_relu', inputs: ['fc0'], op: 'relu' });
  nodes.push({ name: 'fc1', inputs: ['fc0_relu'], op: 'linear', in_features: manifest.hidden, out_features: manifest.classes });
  for (const l of ['fc0', 'fc1']) tensors.push([`${l}.weight`, ...param(`${l}.W`)], [`${l}.bias`, ...param(`${l}.B`)]);
  const spec = {
    format: 'advlens-bundle', version: 1, name: `peer-${manifest.name}`,
    input: { channels: c, height: h, width: w, mean: Array(c).fill(0), std: Array(c).fill(1) },
    classes: Array.from({ length: manifest.classes }, (_, i) => String(i)), nodes, output: 'fc1',
  };
  return [new TextEncoder().encode(JSON.stringify(spec)), safetensors(tensors)];
}

// safetensors: u64 LE header size, JSON header (padded with spaces to 8 bytes), raw LE data.
function safetensors(tensors) {
  const header = {}; let offset = 0;
  for (const [name, shape, data] of tensors) {
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + data.length * 4] };
    offset += data.length * 4;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const [, , data] of tensors) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
  return out;
}

export async function init_({ manifest, weights, params }) {
  await init();
  [C, H, W] = manifest.input_shape; K = manifest.classes;
  // An imported model (tests/bench/peer224.py) comes as a bundle; the harness's own nets are built here.
  const fetched = async (suffix) => new Uint8Array(await (await fetch(`models/${manifest.name}.${suffix}`)).arrayBuffer());
  const [json, st] = manifest.bundle ? await Promise.all([fetched('model.json'), fetched('weights.safetensors')]) : bundleFor(manifest, weights);
  session = await Session.create(json, st, params.get('device') || 'cpu');
  return { info: { engine: `advlens ${session.engine()}`, device: session.engine() } };
}
export { init_ as init };

export async function forward(x, n) {
  return await session.forward(x, n);
}

const argmax = (a, from, len) => { let b = 0; for (let i = 1; i < len; i++) if (a[from + i] > a[from + b]) b = i; return b; };

// Mean cross-entropy over the batch and its input gradient (the harness times batch 1).
export async function inputGrad(x, n, onehot) {
  const target = argmax(onehot, 0, K);
  for (let i = 1; i < n; i++) if (argmax(onehot, i * K, K) !== target) throw new Error('advlens adapter: one target per batch');
  const { values, grad } = await session.crossEntropyGradient(x, n, target);
  if (n > 1) for (let i = 0; i < grad.length; i++) grad[i] /= n;
  return { loss: values.reduce((a, b) => a + b, 0) / n, grad };
}

export async function pgd(x0, onehot, { eps, alpha, steps }) {
  const target = argmax(onehot, 0, K);
  let x = Float32Array.from(x0);
  for (let s = 0; s < steps; s++) {
    const { grad } = await session.crossEntropyGradient(x, 1, target);
    for (let i = 0; i < x.length; i++) {
      const v = x[i] + alpha * Math.sign(grad[i]);
      x[i] = Math.min(1, Math.max(0, Math.min(x0[i] + eps, Math.max(x0[i] - eps, v))));
    }
  }
  return x;
}

export async function dispose() { session?.free(); session = undefined; }
