#!/usr/bin/env python3
"""Does averaging over moved corners at test time help? On a cross-validation's folds
(bench/real_experiments.sh), each held-out real disc is classified by its fold's model with its
own corners and with N copies whose corners move by a normal draw of sd FRAC x the disc's width
(training's --corner-jitter), and the AUC of P(lesion) = 1 - P(normal) is compared, fold by
fold, with and without averaging. A move that leaves no disc keeps the disc's own corners, as
training does. Label noise: SPIDER graded the whole volume, the slice is its middle.

    python3 bench/corner_averaging.py target/real-experiments/real-phantoms-jitter [N] [FRAC]
"""
import csv
import json
import math
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from real_baselines import auc, held_out  # auc(score, truth): the AUC every bench script reports

ROOT = Path(__file__).resolve().parent.parent
CORNERS = ["x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4"]


def leaves_a_disc(q):
    """The binary's own test (disc::geometry): the endplates' midpoints apart along the disc's
    normal by more than 5 % of its width, with a margin."""
    d1, d2 = (q[2] - q[0], q[3] - q[1]), (q[6] - q[4], q[7] - q[5])
    l1, l2 = math.hypot(*d1), math.hypot(*d2)
    if min(l1, l2) < 1:
        return False
    if d1[0] * d2[0] + d1[1] * d2[1] < 0:
        d1 = (-d1[0], -d1[1])
    axis = (d1[0] / l1 + d2[0] / l2, d1[1] / l1 + d2[1] / l2)
    n = math.hypot(*axis)
    if n < 1e-9:
        return False
    normal = (-axis[1] / n, axis[0] / n)
    gap = abs(((q[4] + q[6]) - (q[0] + q[2])) / 2 * normal[0] + ((q[5] + q[7]) - (q[1] + q[3])) / 2 * normal[1])
    return gap >= max(0.07 * 0.5 * (l1 + l2), 2)


def main():
    cv = Path(sys.argv[1])
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    frac = float(sys.argv[3]) if len(sys.argv) > 3 else 0.03
    manifest = ROOT / "data/spider/manifest.csv"
    rows = [r for r in csv.DictReader(open(manifest)) if r["label"] in ("normal", "lesion")]
    plain_all, averaged_all = [], []
    for fold in sorted(cv.glob("fold-*")):
        held = held_out(fold)
        mine = [r for r in rows if r["subject"] in held]
        with tempfile.NamedTemporaryFile("w", suffix=".csv", newline="", delete=False) as f:
            w = csv.writer(f)
            w.writerow(["image", "subject", "level", "label"] + CORNERS)
            for i, r in enumerate(mine):
                c = [float(r[k]) for k in CORNERS]
                width = 0.5 * (math.dist(c[0:2], c[2:4]) + math.dist(c[4:6], c[6:8]))
                rng = random.Random(f"{fold.name}:{i}")
                image = (manifest.parent / r["image"]).resolve()
                for v in range(copies + 1):
                    moved = c if v == 0 else [q + rng.gauss(0, frac * width) for q in c]
                    w.writerow([image, r["subject"], r["level"], r["label"]]
                               + [f"{q:.3f}" for q in (moved if leaves_a_disc(moved) else c)])
        out = subprocess.run([str(ROOT / "target/debug/endplate"), "classify", "--manifest", f.name, "--json",
                              "--model", str(fold / "model.onnx")], capture_output=True, text=True)
        Path(f.name).unlink()
        if out.returncode:
            sys.exit(f"{fold}: endplate classify failed: {out.stderr.strip()}")
        lesion = [1 - r["probabilities"]["normal"] for r in json.loads(out.stdout)["results"]]
        labels = np.array([r["label"] == "lesion" for r in mine])
        per = np.array(lesion).reshape(len(mine), copies + 1)
        plain, averaged = auc(per[:, 0], labels), auc(per.mean(1), labels)
        plain_all.append(plain)
        averaged_all.append(averaged)
        print(f"{fold.name}: {len(mine)} discs, AUC {plain:.3f} with its own corners, "
              f"{averaged:.3f} averaged over them and {copies} moved copies ({averaged - plain:+.3f})", flush=True)
    p, a = sum(plain_all) / len(plain_all), sum(averaged_all) / len(averaged_all)
    print(f"mean of the folds: {p:.4f} plain, {a:.4f} averaged ({a - p:+.4f})")


if __name__ == "__main__":
    main()
