#!/usr/bin/env python3
"""The card's real cross-validation figure while a cross-validation is still running: SPEC's
pooled lesion-vs-normal figures (AUC of P(lesion), sensitivity, specificity and accuracy at
P(lesion) >= 0.5, 500 bootstrap resamples over patients, seed 1) over the folds finished so far,
in the JSON that `examples/amend_card ... metrics.real_cross_validation @FILE` takes, its `data`
saying how many folds it covers. Once all five folds are done, `train --folds` writes the same
figures itself (cross_validation.json, `lesion_vs_normal_pooled`); use those. Label noise:
SPIDER graded the whole volume, the slice is its middle.

    python3 bench/cv_so_far.py target/real-experiments/real-phantoms-all-long OUT.json
"""
import csv, json, sys
import numpy as np

from real_baselines import auc  # (score, truth): the AUC every bench script reports
cv, out = sys.argv[1], sys.argv[2]
rows = []
k = 0
for f in range(1, 6):
    try:
        rs = list(csv.DictReader(open(f'{cv}/fold-{f}/predictions.csv')))
    except FileNotFoundError:
        break
    k = f
    rows += [(r['subject'].split(':')[-1], r['label'] == 'lesion', 1 - float(r['normal'])) for r in rs if 'spider' in r['subject']]
y = np.array([r[1] for r in rows]); p = np.array([r[2] for r in rows])
subs = sorted({r[0] for r in rows}); by = {s: [i for i, r in enumerate(rows) if r[0] == s] for s in subs}
def stats(p, y):
    return {'auc': float(auc(p, y)), 'sensitivity': float(np.mean(p[y] >= 0.5)), 'specificity': float(np.mean(p[~y] < 0.5)),
            'accuracy': float(np.mean((p >= 0.5) == y))}
point = stats(p, y)
rng = np.random.default_rng(1); boot = []
while len(boot) < 500:
    idx = np.concatenate([by[s] for s in rng.choice(subs, len(subs))])
    if y[idx].min() == y[idx].max():
        continue
    boot.append(stats(p[idx], y[idx]))
res = {m: {'point': point[m], 'lo': float(np.percentile([b[m] for b in boot], 2.5)),
           'hi': float(np.percentile([b[m] for b in boot], 97.5)), 'mean': float(np.mean([b[m] for b in boot]))} for m in point}
res.update(n=len(rows), subjects=len(subs), lesions=int(y.sum()), threshold=0.5,
           bootstrap={'resamples': 500, 'seed': 1, 'unit': 'subject'},
           data=f'SPIDER; folds 1-{k} of 5 so far', folds=5,
           config='real (3/4) + phantoms (1/4), corner jitter 0.03, every layer fine-tuned from the phantom-only model for 8 epochs, cosine learning rate (bench/real_experiments.sh real-phantoms-all-long)')
json.dump(res, open(out, 'w'))
print(json.dumps({m: res[m] for m in ('auc', 'sensitivity', 'specificity', 'n', 'subjects', 'lesions')}))
