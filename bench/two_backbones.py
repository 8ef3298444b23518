#!/usr/bin/env python3
"""Could one model file hold two networks, one that knows real discs and one that knows the
phantoms' lesion types? Measured on the fold models of two `train --folds` reports on the same
real folds (A: the bundled recipe, real 3/4 + phantoms 1/4; B: `scratch`, real discs only): the
held-out real fold's AUC of P(lesion) and the four-class accuracy on 500 fresh phantoms, for

- A alone and B alone (their own heads, softmax without calibration);
- their 4-class logits averaged (one Gemm over the two networks' concatenated features);
- P(normal) from the averaged logit of P(normal), the lesion types' split from A alone;
- one new head on the concatenated features, fitted on the fold's training real discs (binary
  cross-entropy on P(normal)) and all 1,200 phantom discs (four-class), 3:1.

Label noise: SPIDER graded the whole volume, the slice is its middle. Needs `pip install onnx`
(to read each fold model's last layer) and `cargo build --all-targets --features train`.

    python3 bench/two_backbones.py A_REPORT B_REPORT [FOLDS, default 1,2,3,4,5]
    e.g. python3 bench/two_backbones.py target/real-experiments-per-manifest/real-phantoms-jitter \
             target/real-experiments/scratch 1,2,3
"""
import csv
import os
import subprocess
import sys

import numpy as np

try:
    import onnx
    from onnx import numpy_helper
except ImportError:
    sys.exit('bench/two_backbones.py reads each fold model\'s last layer with Python\'s onnx: pip install onnx')

from real_baselines import auc

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
REAL = 'data/spider/manifest.csv'
PHANTOMS = 'target/real-experiments/phantoms-240/manifest.csv'
FRESH = 'target/phantoms/test/manifest.csv'
FRESH_CMD = 'endplate synth --out target/phantoms/test --subjects 100 --seed 9001 --bits 16 --class-mix paper'
CLASSES = ['normal', 'wavy', 'notched', 'schmorl']


def features(manifest, model, out):
    """`examples/real_features`' pooled features of every labelled disc, in manifest order."""
    if not os.path.exists(out):
        subprocess.run([f'{ROOT}/target/debug/examples/real_features', manifest, out, model],
                       cwd=ROOT, check=True)
    rows = list(csv.reader(open(out)))[1:]
    return np.array([[float(x) for x in r[3:]] for r in rows]), [r[0] for r in rows], \
        np.array([int(r[2]) for r in rows])


def last_layer(model):
    w = {i.name: numpy_helper.to_array(i) for i in onnx.load(model).graph.initializer}
    return w['fc.weight'], w['fc.bias']


def log_softmax(z):
    m = z.max(1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(1, keepdims=True))


def p_lesion(z):
    return 1 - np.exp(log_softmax(z)[:, 0])


def normal_from_mean(za, zb):
    """P(normal) from the mean of the two logits of P(normal); the lesion split from A."""
    la, lb = log_softmax(za), log_softmax(zb)
    logit = lambda l: l[:, 0] - np.log1p(-np.exp(l[:, 0]).clip(max=1 - 1e-7))
    pn = 1 / (1 + np.exp(-(logit(la) + logit(lb)) / 2))
    pa = np.exp(la[:, 1:])
    return np.log(np.c_[pn, (1 - pn)[:, None] * pa / pa.sum(1, keepdims=True)] + 1e-12)


def fit_head(xr, yr, xp, yp, share=0.75, lam=1e-2, steps=400, lr=0.05):
    """A four-class head by full-batch Adam (no randomness): binary cross-entropy on P(normal)
    for the real discs, cross-entropy for the phantoms, weighted share : 1 - share."""
    w, b = np.zeros((xr.shape[1], 4)), np.zeros(4)
    m, v = [np.zeros_like(w), np.zeros_like(b)], [np.zeros_like(w), np.zeros_like(b)]
    first = (np.arange(4) == 0)[None, :]
    for t in range(1, steps + 1):
        p = np.exp(log_softmax(xr @ w + b))
        pn, tn = np.clip(p[:, 0], 1e-7, 1 - 1e-7), (yr == 0).astype(float)
        g = ((-(tn / pn) + (1 - tn) / (1 - pn)) * pn)[:, None] * (first - p)
        gw, gb = lam * w + share * xr.T @ g / len(yr), share * g.mean(0)
        q = np.exp(log_softmax(xp @ w + b))
        q[np.arange(len(yp)), yp] -= 1
        gw, gb = gw + (1 - share) * xp.T @ q / len(yp), gb + (1 - share) * q.mean(0)
        for i, grad in enumerate((gw, gb)):
            m[i] = 0.9 * m[i] + 0.1 * grad
            v[i] = 0.999 * v[i] + 0.001 * grad * grad
            step = lr * (m[i] / (1 - 0.9 ** t)) / (np.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8)
            (w if i == 0 else b)[...] -= step
    return w, b


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    a_report, b_report = sys.argv[1], sys.argv[2]
    folds = [int(k) for k in (sys.argv[3] if len(sys.argv) > 3 else '1,2,3,4,5').split(',')]
    if not os.path.exists(f'{ROOT}/{FRESH}'):
        sys.exit(f'{FRESH} is missing: make it with `{FRESH_CMD}`')
    labels = lambda m: np.array([CLASSES.index(r['label'])
                                 for r in csv.DictReader(open(f'{ROOT}/{m}')) if r['label']])
    y_phantoms, y_fresh = labels(PHANTOMS), labels(FRESH)
    os.makedirs(f'{ROOT}/target/two-backbones', exist_ok=True)
    scores, truth = {}, []
    for k in folds:
        held = {r['subject'].split(':')[-1]
                for r in csv.DictReader(open(f'{b_report}/fold-{k}/predictions.csv'))}
        z, x = {}, {}
        for name, report in (('A', a_report), ('B', b_report)):
            model = f'{report}/fold-{k}/model.onnx'
            cache = f'{ROOT}/target/two-backbones/{name}{k}'
            xr, subjects, y = features(REAL, model, f'{cache}-real.csv')
            xp, _, _ = features(PHANTOMS, model, f'{cache}-phantoms.csv')
            xf, _, _ = features(FRESH, model, f'{cache}-fresh.csv')
            w, b = last_layer(model)
            z[name] = (xr @ w.T + b, xf @ w.T + b)
            x[name] = (xr, xp, xf)
        test = np.array([s in held for s in subjects])
        truth.append(y[test])
        xr, xp, xf = (np.hstack([x['A'][i], x['B'][i]]) for i in range(3))
        both = np.vstack([xr[~test], xp])
        mu, sd = both.mean(0), both.std(0) + 1e-6
        w, b = fit_head((xr[~test] - mu) / sd, y[~test], (xp - mu) / sd, y_phantoms)
        variants = {
            'A': z['A'],
            'B': z['B'],
            'mean of 4-class logits': ((z['A'][0] + z['B'][0]) / 2, (z['A'][1] + z['B'][1]) / 2),
            'P(normal) mean, split A': (normal_from_mean(z['A'][0], z['B'][0]),
                                        normal_from_mean(z['A'][1], z['B'][1])),
            'new head on both': ((xr - mu) / sd @ w + b, (xf - mu) / sd @ w + b),
        }
        for name, (zr, zf) in variants.items():
            s = p_lesion(zr[test])
            scores.setdefault(name, []).append(s)
            accuracy = (zf.argmax(1) == y_fresh).mean()
            print(f'fold {k}  {name:24s}  real AUC {auc(s, y[test]):.3f}  '
                  f'fresh phantoms {100 * accuracy:.1f} %', flush=True)
    y = np.concatenate(truth)
    for name, s in scores.items():
        print(f'pooled over folds {folds}: {name:24s}  real AUC {auc(np.concatenate(s), y):.3f}')


if __name__ == '__main__':
    main()
