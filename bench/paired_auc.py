#!/usr/bin/env python3
"""Pooled AUC of P(lesion) per column, with a 95 % bootstrap interval over patients, and the
paired difference to the first column (the same patients drawn for every column). Label noise:
SPIDER graded the whole volume, the slice is its middle.

    python3 bench/paired_auc.py tta.csv            # columns of examples/tta_check's CSV
    python3 bench/paired_auc.py --cv A B [C ...]   # out-of-fold predictions of `train --folds`
                                                   # reports on the same manifests (any seeds)
    python3 bench/paired_auc.py --cv --mean A B    # and an ensemble column: their logits of
                                                   # P(lesion) averaged, disc by disc
"""
import csv
import sys
import numpy as np

from real_baselines import auc, from_cv  # the same AUC as the baselines


args = [a for a in sys.argv[1:] if a != "--mean"]
rows = from_cv(args[1:]) if args[0] == "--cv" else list(csv.DictReader(open(args[0])))
cols = [c for c in rows[0] if c not in ("subject", "lesion")]
if "--mean" in sys.argv:
    logit = lambda p: np.log(np.clip(p, 1e-7, 1 - 1e-7) / (1 - np.clip(p, 1e-7, 1 - 1e-7)))
    for r in rows:
        r["mean"] = 1 / (1 + np.exp(-np.mean([logit(float(r[c])) for c in cols])))
    cols.append("mean")
subjects = sorted({r["subject"] for r in rows})
by = {s: [i for i, r in enumerate(rows) if r["subject"] == s] for s in subjects}
y = np.array([int(r["lesion"]) for r in rows])
P = {c: np.array([float(r[c]) for r in rows]) for c in cols}
rng = np.random.default_rng(1)
boot = {c: [] for c in cols}
diff = {c: [] for c in cols}
for _ in range(2000):
    idx = np.concatenate([by[s] for s in rng.choice(subjects, len(subjects))])
    if y[idx].min() == y[idx].max():
        continue
    base = auc(P[cols[0]][idx], y[idx])
    for c in cols:
        a = auc(P[c][idx], y[idx])
        boot[c].append(a)
        diff[c].append(a - base)
print(f"{len(rows)} discs, {len(subjects)} patients")
for c in cols:
    lo, hi = np.percentile(boot[c], [2.5, 97.5])
    dlo, dhi = np.percentile(diff[c], [2.5, 97.5])
    print(f"{c:8s} AUC {100*auc(P[c], y):.1f} ({100*lo:.1f}-{100*hi:.1f})  vs {cols[0]} {100*(auc(P[c], y)-auc(P[cols[0]], y)):+.1f} ({100*dlo:+.1f} to {100*dhi:+.1f})")
