#!/usr/bin/env python3
"""Where a recipe reads real discs well and where it does not: the pooled out-of-fold AUC of
P(lesion) of a `train --folds` run, split by level, scanner, field strength, sequence and how the
disc's corners were placed, each with a 95 % bootstrap interval over that stratum's patients.
Label noise: SPIDER graded the whole volume, the slice is its middle; and strata of a few dozen
patients have wide intervals, so read differences only where the intervals say so.

    python3 bench/real_strata.py target/real-experiments/real-phantoms-all-long-mirror [MANIFEST]

MANIFEST (default data/spider/manifest.csv) must be the one the run learnt from: each fold lists
a patient's discs in its order, which is how a prediction finds its row.
"""
import csv
import json
import os
import sys
from collections import defaultdict

import numpy as np

from real_baselines import DATA, auc, bootstrap, from_cv


def main():
    run = sys.argv[1]
    manifest = sys.argv[2] if len(sys.argv) > 2 else 'data/spider/manifest.csv'
    slices = {r['image']: r for r in csv.DictReader(open(os.path.join(DATA, 'slices.csv')))}
    labelled = defaultdict(list)
    for r in csv.DictReader(open(manifest)):
        if r['label'] in ('normal', 'lesion'):
            labelled[r['subject']].append(r)
    place = defaultdict(int)
    rows = []
    for p in from_cv([run], os.path.basename(manifest)):
        k = place[p['subject']]
        place[p['subject']] += 1
        m = labelled[p['subject']][k]
        assert int(m['label'] == 'lesion') == p['lesion'], f"{p['subject']}: {MISMATCH}"
        s = slices[os.path.basename(m['image'])]
        rows.append({
            'patient': p['subject'], 'y': p['lesion'], 'p': p[os.path.basename(run.rstrip('/'))],
            'level': m['level'],
            'scanner': f"{s['manufacturer'].split()[0]} {s['field_strength_t']} T",
            'sequence': m['series'] or 'TSE',
            'corners': m['source'],
        })
    y = np.array([r['y'] for r in rows])
    p = np.array([r['p'] for r in rows])
    pat = [r['patient'] for r in rows]
    lo, hi = bootstrap(p, y, pat)
    print(f"{run}: {len(rows)} real discs, {len(set(pat))} patients (noisy labels: SPIDER graded"
          " the whole volume, the slice is its middle)")
    print(f"{'stratum':28s} {'discs':>5s} {'patients':>8s} {'lesion':>6s}  AUC (95 % interval)")
    print(f"{'all':28s} {len(y):5d} {len(set(pat)):8d} {y.mean():6.0%}  "
          f"{auc(p, y):.3f} ({lo:.3f}-{hi:.3f})")
    for key in ('level', 'scanner', 'sequence', 'corners'):
        groups = defaultdict(list)
        for i, r in enumerate(rows):
            groups[r[key]].append(i)
        for value, idx in sorted(groups.items()):
            yy, pp, pa = y[idx], p[idx], [pat[i] for i in idx]
            if yy.min() == yy.max() or len(set(pa)) < 5:
                print(f"{key + ' ' + value:28s} {len(idx):5d} {len(set(pa)):8d} {yy.mean():6.0%}"
                      "  (too few to say)")
                continue
            lo, hi = bootstrap(pp, yy, pa)
            print(f"{key + ' ' + value:28s} {len(idx):5d} {len(set(pa)):8d} {yy.mean():6.0%}  "
                  f"{auc(pp, yy):.3f} ({lo:.3f}-{hi:.3f})")


MISMATCH = "the run's label differs from the manifest's: pass the manifest the run learnt from"

if __name__ == '__main__':
    main()
