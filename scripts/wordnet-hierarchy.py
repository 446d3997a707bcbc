#!/usr/bin/env python3
"""Writes trainer/assets/hierarchy/cifar10.json: a child -> parent map from each CIFAR-10 class up
to WordNet's root, from the offline WordNet database (Debian package `wordnet`, command `wn`).

    apt-get install -y wordnet && python3 scripts/wordnet-hierarchy.py

Each class uses WordNet's first noun sense and the first hypernym chain `wn WORD -hypen` prints
(the primary path when a synset has several parents). Synsets are named by their first lemma.
"""
import json
import pathlib
import subprocess

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def chain(word):
    out = subprocess.run(["wn", word, "-hypen", "-n1"], capture_output=True, text=True).stdout  # wn exits non-zero on success
    lines = [l for l in out.splitlines() if l.strip()]
    start = next(i for i, l in enumerate(lines) if l.startswith("Sense 1"))
    path, depth = [], -1
    for line in lines[start + 2:]:
        if "=>" not in line:
            break
        indent = line.index("=>")
        if indent <= depth:
            break  # a second parent's branch
        depth = indent
        path.append(line.split("=>", 1)[1].split(",")[0].strip())
    return path


def main():
    parents = {}
    for c in CLASSES:
        path = chain(c)
        names = [c] + path
        for child, parent in zip(names, names[1:]):
            if parents.get(child, parent) != parent:
                raise SystemExit(f"{child} has two parents: {parents[child]} and {parent}")
            parents[child] = parent
    out = pathlib.Path(__file__).resolve().parent.parent / "trainer/assets/hierarchy/cifar10.json"
    out.write_text(json.dumps(dict(sorted(parents.items())), indent=1) + "\n")
    print(f"wrote {out} ({len(parents)} edges)")


if __name__ == "__main__":
    main()
