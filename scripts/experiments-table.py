#!/usr/bin/env python3
"""Prints the Markdown results table of scripts/experiments.sh runs.

    python3 scripts/experiments-table.py [runs/experiments/quick]
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "runs/experiments/quick")
timings = {}
if (root / "timings.jsonl").exists():
    for line in (root / "timings.jsonl").read_text().splitlines():
        t = json.loads(line)
        timings[t["name"]] = t
print("| experiment | arch (width) | mode | epochs | best epoch | test acc. (full split) | eval images | clean | " +
      "FGSM | PGD-20 | PGD-100 | eps | restarts | train min |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for run in sorted(p for p in root.iterdir() if (p / "eval.json").exists()):
    config = json.loads((run / "config.json").read_text())
    metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    ev = json.loads((run / "eval.json").read_text())
    best = max(metrics, key=lambda m: m["val_accuracy"] if m["val_accuracy"] is not None else m["epoch"])
    rows = {r["name"]: r["accuracy"] for r in ev["rows"]}
    pct = lambda k: f"{100 * rows[k]:.1f}%" if k in rows else "-"
    mode = config["mode"]["mode"]
    t = timings.get(run.name, {})
    print(f"| {run.name} | {config['arch']} ({config['width']}) | {mode} | {config['epochs']} | {best['epoch']} | "
          f"{100 * best['test_accuracy']:.2f}% | {ev['images']} | {pct('clean')} | {pct('fgsm')} | {pct('pgd20')} | "
          f"{pct('pgd100')} | {ev['epsilon']:.3g} | {ev['restarts']} | {t.get('train_seconds', 0) / 60:.1f} |")
