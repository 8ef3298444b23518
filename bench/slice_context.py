#!/usr/bin/env python3
"""Does the rest of the slice say more about a disc than the disc itself? A second stage on the
out-of-fold predictions of `train --folds` reports (same manifest and seed, so the same folds):
each disc's logit of P(lesion) (averaged over the reports given), its level (one-hot), and the
mean and the largest of that logit over the other discs of the same slice, fitted by an L2
logistic regression on four folds and scored on the fifth, the same patient folds as the
reports. Label noise: SPIDER graded the whole volume, the slice is its middle.

    python3 bench/slice_context.py target/real-experiments/scratch [REPORT ...]
"""
import csv
import os
import sys

import numpy as np

from real_baselines import auc, fit, predict, standardise

MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), '../data/spider/manifest.csv')
LEVELS = ['L1L2', 'L2L3', 'L3L4', 'L4L5', 'L5S1']


def out_of_fold(report, rows_of):
    """The report's held-out discs, fold by fold, joined to their manifest rows: a fold's
    predictions list each subject's discs in manifest order."""
    out = []
    for f in range(1, 100):
        path = f'{report}/fold-{f}/predictions.csv'
        if not os.path.exists(path):
            break
        seen = {}
        for r in csv.DictReader(open(path)):
            if 'spider' not in r['subject']:
                continue
            s = r['subject'].split(':')[-1]
            m = rows_of[s][seen.get(s, 0)]
            seen[s] = seen.get(s, 0) + 1
            assert (m['label'] == 'lesion') == (r['label'] == 'lesion'), f'{path}: {s} out of order'
            out.append({'image': m['image'], 'level': m['level'], 'fold': f,
                        'y': int(r['label'] == 'lesion'), 'p': 1 - float(r['normal'])})
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows_of = {}
    for r in csv.DictReader(open(MANIFEST)):
        if r['label']:
            rows_of.setdefault(r['subject'], []).append(r)
    reports = [out_of_fold(r, rows_of) for r in sys.argv[1:]]
    for path, r in zip(sys.argv[1:], reports):
        if not r:
            sys.exit(f'{path}: no fold-K/predictions.csv with SPIDER discs; give the report folder of a `train --folds` run')
    assert len({len(r) for r in reports}) == 1, 'the reports hold different discs'
    base = reports[0]
    p = np.clip([[d['p'] for d in r] for r in reports], 1e-6, 1 - 1e-6)
    z = np.log(p / (1 - p)).mean(0)
    y = np.array([d['y'] for d in base])
    folds = np.array([d['fold'] for d in base])
    level = np.array([[d['level'] == l for l in LEVELS] for d in base], float)
    image = np.array([d['image'] for d in base])
    others_mean, others_max = np.empty(len(z)), np.empty(len(z))
    for i in range(len(z)):
        o = image == image[i]
        o[i] = False
        others_mean[i] = z[o].mean() if o.any() else z.mean()
        others_max[i] = z[o].max() if o.any() else z.mean()

    def second_stage(x):
        score = np.zeros(len(y))
        for f in np.unique(folds):
            tr, te = standardise(x[folds != f], x[folds == f])
            score[folds == f] = predict(fit(tr, y[folds != f], 1e-3), te)
        return auc(score, y)

    print(f'{len(y)} discs, {len(np.unique(folds))} folds; pooled AUC of P(lesion)')
    print(f'  the disc alone                                 {auc(z, y):.3f}')
    print(f'  the other discs of its slice alone (mean)      {auc(others_mean, y):.3f}')
    print(f'  disc + level                                   {second_stage(np.c_[z, level]):.3f}')
    print(f'  disc + other discs (mean, largest)             {second_stage(np.c_[z, others_mean, others_max]):.3f}')
    print(f'  disc + other discs + level                     {second_stage(np.c_[z, others_mean, others_max, level]):.3f}')


if __name__ == '__main__':
    main()
