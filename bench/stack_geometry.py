#!/usr/bin/env python3
"""Does the disc's level or its shape add to P(lesion)? A second-stage logistic regression on
the out-of-fold logit of P(lesion) plus the level (one-hot) and the disc's shape from its
corners (mean height over width, anterior minus posterior height over width), fitted on four
folds' out-of-fold discs and scored on the fifth (nested in the same patient folds), against
the same regression on the logit alone. Label noise: SPIDER graded the whole volume, the slice
is its middle.

    python3 bench/stack_geometry.py [FOLDS]   (default target/phantoms/as-shipped, written by
                                               build.sh model: fold-K/held-out.csv, predictions.csv)
"""
import csv
import sys

import numpy as np

from real_baselines import auc

base = sys.argv[1] if len(sys.argv) > 1 else 'target/phantoms/as-shipped'
LEVELS = ['L1L2', 'L2L3', 'L3L4', 'L4L5', 'L5S1']
X, y, fold = [], [], []
for f in range(1, 6):
    held = list(csv.DictReader(open(f'{base}/fold-{f}/held-out.csv')))
    pred = [r for r in csv.DictReader(open(f'{base}/fold-{f}/predictions.csv')) if 'spider' in r['subject']]
    assert len(held) == len(pred), f'fold {f}: {len(held)} held-out rows, {len(pred)} predictions'
    for h, p in zip(held, pred):
        assert h['subject'] == p['subject'].split(':')[-1]
        c = np.array([float(h[k]) for k in ('x1', 'y1', 'x2', 'y2', 'x3', 'y3', 'x4', 'y4')]).reshape(4, 2)
        width = (np.linalg.norm(c[1] - c[0]) + np.linalg.norm(c[3] - c[2])) / 2
        anterior, posterior = np.linalg.norm(c[2] - c[0]), np.linalg.norm(c[3] - c[1])
        pl = min(max(1 - float(p['normal']), 1e-6), 1 - 1e-6)
        X.append([np.log(pl / (1 - pl))] + [float(h['level'] == l) for l in LEVELS[1:]]
                 + [(anterior + posterior) / 2 / width, (anterior - posterior) / width])
        y.append(h['label'] == 'lesion')
        fold.append(f)
X, y, fold = np.array(X), np.array(y), np.array(fold)


def fit(X, y, l2=1e-2):
    """L2 logistic regression by Newton's method."""
    X1 = np.c_[np.ones(len(X)), X]
    w = np.zeros(X1.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-X1 @ w))
        H = X1.T @ (X1 * (p * (1 - p))[:, None]) + l2 * np.eye(len(w))
        w -= np.linalg.solve(H, X1.T @ (p - y) + l2 * w)
    return w


print(f'{len(y)} discs; P(lesion) as scored: AUC {auc(X[:, 0], y):.4f}')
for name, cols in [('logit alone', [0]), ('logit + level', [0, 1, 2, 3, 4]),
                   ('logit + shape', [0, 5, 6]), ('logit + level + shape', list(range(7)))]:
    out = np.zeros(len(y))
    for f in range(1, 6):
        tr = fold != f
        w = fit(X[tr][:, cols], y[tr])
        out[~tr] = np.c_[np.ones((~tr).sum()), X[~tr][:, cols]] @ w
    print(f'{name:24s} AUC {auc(out, y):.4f}')
