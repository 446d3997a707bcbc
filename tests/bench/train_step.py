"""PyTorch eager peer of `advlens bench-step`: the same graph (read from the model.json that
`advlens bench-step --write-spec` wrote), the same training step, the same timing loop.

    python train_step.py MODEL_JSON --mode consistent --batch-size 64 --attack-steps 10 ...

Prints one JSON line like advlens: {"mode", "batch_size", "steps", "median_ms", "mean_ms", "min_ms"}.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


class Graph(torch.nn.Module):
    """A bundle graph (docs/bundle-format.md) as a PyTorch module."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.layers = torch.nn.ModuleDict()
        for node in spec["nodes"]:
            op, name = node["op"], node["name"]
            if op == "conv2d":
                layer = torch.nn.Conv2d(node["in_channels"], node["out_channels"], node["kernel"], node["stride"], node["padding"],
                                        groups=node.get("groups", 1), dilation=node.get("dilation", 1))
            elif op == "linear":
                layer = torch.nn.Linear(node["in_features"], node["out_features"])
            elif op == "batch_norm2d":
                layer = torch.nn.BatchNorm2d(node["channels"], eps=node["eps"])
            elif op == "max_pool2d":
                layer = torch.nn.MaxPool2d(node["kernel"], node["stride"], node["padding"])
            elif op == "avg_pool2d":
                layer = torch.nn.AvgPool2d(node["kernel"], node["stride"], node["padding"])
            elif op == "dropout":
                layer = torch.nn.Dropout(0.5)
            else:
                layer = None
            if layer is not None:
                self.layers[name] = layer
        inp = spec["input"]
        c = inp["channels"]
        self.register_buffer("mean", torch.tensor(inp["mean"]).view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(inp["std"]).view(1, c, 1, 1))

    def forward_all(self, x):
        acts = {"input": (x - self.mean) / self.std}
        for node in self.spec["nodes"]:
            op, name = node["op"], node["name"]
            a = acts[node["inputs"][0]]
            if name in self.layers:
                y = self.layers[name](a)
            elif op == "relu":
                y = F.relu(a)
            elif op == "flatten":
                y = a.flatten(1)
            elif op == "clip":
                y = F.hardtanh(a, node["min"], node["max"])
            elif op == "global_avg_pool":
                y = a.mean(dim=(2, 3))
            elif op == "sigmoid":
                y = torch.sigmoid(a)
            elif op == "leaky_relu":
                y = F.leaky_relu(a, node["alpha"])
            elif op == "add":
                y = a + acts[node["inputs"][1]]
            elif op == "hard_sigmoid":
                y = torch.clamp(a * node["alpha"] + node["beta"], 0.0, 1.0)
            elif op == "hard_swish":
                y = F.hardswish(a)
            elif op == "mul":
                b = acts[node["inputs"][1]]
                y = a * (b[:, :, None, None] if b.dim() == 2 and a.dim() == 4 else b)
            elif op == "concat":
                y = torch.cat([acts[i] for i in node["inputs"]], dim=1)
            else:
                raise ValueError(f"unknown op {op}")
            acts[name] = y
        return acts

    def forward(self, x):
        return self.forward_all(x)[self.spec["output"]]


def pgd(model, x, y, eps, step, steps, random_start=True):
    """L-inf PGD on the summed cross-entropy, in eval mode (as advlens generates attacks)."""
    was_training = model.training
    model.eval()
    x0 = x.detach()
    xa = (x0 + (torch.rand_like(x0) * 2 - 1) * eps).clamp(0, 1) if random_start else x0.clone()
    for _ in range(steps):
        xa.requires_grad_(True)
        loss = F.cross_entropy(model(xa), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, [xa])
        xa = torch.min(torch.max(xa.detach() + step * g.sign(), x0 - eps), x0 + eps).clamp(0, 1)
    model.train(was_training)
    return xa.detach()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("spec")
    p.add_argument("--mode", default="standard", choices=["standard", "pgd", "consistent"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--attack-steps", type=int, default=10)
    p.add_argument("--epsilon", type=float, default=0.3)
    p.add_argument("--step-size", type=float, default=0.01)
    p.add_argument("--lambda", dest="lam", type=float, default=1.0)
    p.add_argument("--feature-layer", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--channels-last", action="store_true", help="the model and images in torch.channels_last")
    p.add_argument("--autocast", default="off", choices=["off", "bf16"],
                   help="bf16: forward passes (the attack's too) under torch.autocast(dtype=torch.bfloat16)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    spec = json.load(open(a.spec))
    device = torch.device("cuda" if a.device in ("cuda", "gpu") else a.device)
    model = Graph(spec).to(device).train()
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    inp = spec["input"]
    x = torch.rand(a.batch_size, inp["channels"], inp["height"], inp["width"], device=device)
    if a.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(len(spec["classes"]), (a.batch_size,), device=device)
    feature = a.feature_layer
    amp = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.autocast == "bf16")

    def step():
        with amp():
            if a.mode == "standard":
                loss = F.cross_entropy(model(x), y)
            elif a.mode == "pgd":
                xa = pgd(model, x, y, a.epsilon, a.step_size, a.attack_steps)
                loss = F.cross_entropy(model(xa), y)
            else:
                xa = pgd(model, x, y, a.epsilon, a.step_size, a.attack_steps)
                acts = model.forward_all(torch.cat([x, xa]))
                logits, phi = acts[spec["output"]], acts[feature]
                b = x.shape[0]
                loss = (F.cross_entropy(logits[:b], y) + F.cross_entropy(logits[b:], y)
                        + a.lam * (phi[:b].float() - phi[b:].float()).pow(2).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()  # waits for the device, as advlens does

    times = []
    for i in range(a.warmup + a.steps):
        t = time.perf_counter()
        step()
        if i >= a.warmup:
            times.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({"mode": a.mode, "batch_size": a.batch_size, "steps": a.steps,
                      "median_ms": statistics.median(times), "mean_ms": statistics.fmean(times), "min_ms": min(times)}))


if __name__ == "__main__":
    main()
