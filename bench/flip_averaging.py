#!/usr/bin/env python3
"""Does averaging a disc's ROI with its mirror image help? Training flips every ROI left to
right (anterior and posterior swap) with probability 0.5, the paper's augmentation, so each fold
model has learnt both views. On a cross-validation's folds (bench/real_experiments.sh), each
held-out real disc's ROI (`endplate roi`, 8-bit PNG) goes through its fold's model as is and
mirrored, with onnxruntime, and the AUC of P(lesion) = 1 - P(normal) (softmax of the raw logits;
calibration is monotone and changes no single model's AUC) is compared fold by fold, and pooled,
for the ROI alone and for the mean of the two views' logits. Label noise: SPIDER graded the
whole volume, the slice is its middle.

    python3 bench/flip_averaging.py target/real-experiments/real-phantoms-all-long [OUT.csv]

OUT.csv (optional) keeps every disc's P(lesion) as is, mirrored and averaged, with its
patient, for the paired interval: `python3 bench/paired_auc.py OUT.csv`. Needs `pip install onnxruntime numpy pillow`.
"""
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from real_baselines import auc, held_out  # auc(score, truth): the AUC every bench script reports

ROOT = Path(__file__).resolve().parent.parent
CORNERS = ["x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4"]
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)


def rois(rows, manifest, binary, tmp):
    """Every row's ROI as float gray [0, 1], shape (N, 128, 128)."""
    out = []
    for i, r in enumerate(rows):
        png = Path(tmp) / f"{i}.png"
        image = (manifest.parent / r["image"]).resolve()
        corners = ",".join(r[k] for k in CORNERS)
        done = subprocess.run([binary, "roi", "--image", str(image), "--corners", corners, "--out", str(png)],
                              capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{image}: endplate roi failed: {done.stderr.strip()}")
        out.append(np.asarray(Image.open(png).convert("L"), np.float32) / 255.0)
    return np.stack(out)


def logits_of(session, gray):
    """Raw logits of gray ROIs (N, 128, 128), normalised as the card says, in batches of 32."""
    x = (np.repeat(gray[:, None], 3, axis=1) - MEAN) / STD
    return np.concatenate([session.run(["logits"], {"input": x[i:i + 32]})[0] for i in range(0, len(x), 32)])


def lesion_of(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return 1 - e[:, 0] / e.sum(1)


def main():
    cv = Path(sys.argv[1])
    keep = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    binary = str(ROOT / "target/release/endplate")
    manifest = ROOT / "data/spider/manifest.csv"
    rows = [r for r in csv.DictReader(open(manifest)) if r["label"] in ("normal", "lesion")]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    pooled = {"plain": [], "flipped": [], "mean": [], "truth": [], "subject": []}
    for fold in sorted(cv.glob("fold-*")):
        held = held_out(fold)
        mine = [r for r in rows if r["subject"] in held]
        with tempfile.TemporaryDirectory() as tmp:
            gray = rois(mine, manifest, binary, tmp)
        session = ort.InferenceSession(str(fold / "model.onnx"), options, providers=["CPUExecutionProvider"])
        plain = logits_of(session, gray)
        flipped = logits_of(session, gray[:, :, ::-1].copy())
        truth = np.array([r["label"] == "lesion" for r in mine])
        scores = {"plain": lesion_of(plain), "flipped": lesion_of(flipped), "mean": lesion_of((plain + flipped) / 2)}
        for k, v in scores.items():
            pooled[k].extend(v)
        pooled["truth"].extend(truth)
        pooled["subject"].extend(r["subject"] for r in mine)
        a = {k: auc(v, truth) for k, v in scores.items()}
        print(f"{fold.name}: {len(mine)} discs, AUC {a['plain']:.3f} as is, {a['flipped']:.3f} mirrored, "
              f"{a['mean']:.3f} the two averaged ({a['mean'] - a['plain']:+.3f})", flush=True)
    truth = np.array(pooled["truth"])
    a = {k: auc(np.array(pooled[k]), truth) for k in ("plain", "flipped", "mean")}
    print(f"pooled over {len(truth)} discs: {a['plain']:.4f} as is, {a['flipped']:.4f} mirrored, "
          f"{a['mean']:.4f} averaged ({a['mean'] - a['plain']:+.4f})")
    if keep:
        with open(keep, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["subject", "lesion", "as_is", "mirrored", "averaged"])
            for i in range(len(truth)):
                w.writerow([pooled["subject"][i], int(truth[i]),
                            f"{pooled['plain'][i]:.6f}", f"{pooled['flipped'][i]:.6f}", f"{pooled['mean'][i]:.6f}"])


if __name__ == "__main__":
    main()
