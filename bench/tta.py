#!/usr/bin/env python3
"""Pooled AUC of P(lesion) per test-time augmentation variant (columns of
examples/tta_check's CSV), with a 95 % bootstrap interval over patients, and the paired
difference to the plain disc. Label noise: SPIDER graded the whole volume, the slice is its
middle.

    python3 bench/tta.py tta.csv
"""
import csv
import sys
import numpy as np


def auc(y, p):
    y = np.asarray(y, bool)
    p = np.asarray(p, float)
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sp = p[order]
    i = 0
    while i < len(sp):  # average ranks of ties
        j = i
        while j + 1 < len(sp) and sp[j + 1] == sp[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n1, n0 = y.sum(), (~y).sum()
    return (ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


rows = list(csv.DictReader(open(sys.argv[1])))
cols = [c for c in rows[0] if c not in ("subject", "lesion")]
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
    base = auc(y[idx], P[cols[0]][idx])
    for c in cols:
        a = auc(y[idx], P[c][idx])
        boot[c].append(a)
        diff[c].append(a - base)
print(f"{len(rows)} discs, {len(subjects)} patients")
for c in cols:
    lo, hi = np.percentile(boot[c], [2.5, 97.5])
    dlo, dhi = np.percentile(diff[c], [2.5, 97.5])
    print(f"{c:8s} AUC {100*auc(y, P[c]):.1f} ({100*lo:.1f}-{100*hi:.1f})  vs plain {100*(auc(y,P[c])-auc(y,P[cols[0]])):+.1f} ({100*dlo:+.1f} to {100*dhi:+.1f})")
