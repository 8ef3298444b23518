#!/usr/bin/env python3
"""Do our level counts agree with SPIDER's? A check that needs no reader: disc signal against
SPIDER's Pfirrmann grades, at our count and shifted by one level.

A degenerate disc (Pfirrmann 4-5) is dark on T2; a healthy one (1-2) is bright. SPIDER graded
every disc by its own count from the sacrum (`IVD label`). If our manifests name the same discs
as SPIDER's count, each disc's brightness on the slice goes with the Pfirrmann grade SPIDER gave
*that* level; if a slice's count were one level off, it would go with its neighbour's grade
instead. Pooled over all slices, the correlation should therefore peak at shift 0.

The signal: the mean gray value of the central 30 % of each disc's corner quadrilateral,
standardised within its slice (scanners and windowing differ between slices, the order of the
discs does not). The correlation is Spearman's between that and the grade, over every disc of
every slice that SPIDER graded at the shifted level; the interval is a 95 % bootstrap over
patients. Per slice, the same correlation over its five to nine discs is printed with
`--per-slice`: too few discs to settle one slice alone, but it flags slices to look at.

Labels are noisy: Pfirrmann was graded on the whole volume, the slice is its middle.
SPIDER: van der Graaf et al., Sci Data 2024, CC BY 4.0.

    python3 bench/level_fingerprint.py [--per-slice] [--shared ../shared]
Needs numpy, scipy and Pillow (pip install numpy scipy pillow).
"""
import argparse
import csv
import os
import sys
from collections import defaultdict

import numpy as np
from PIL import Image, ImageDraw
from scipy.stats import spearmanr

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFESTS = [os.path.join(HERE, '..', 'data', 'spider', f) for f in ('manifest.csv', 'thoracic.csv')]
# SPIDER's IVD label counts from the sacrum: 1 = L5S1.
IVD = {'L5S1': 1, 'L4L5': 2, 'L3L4': 3, 'L2L3': 4, 'L1L2': 5,
       'T12L1': 6, 'T11T12': 7, 'T10T11': 8, 'T9T10': 9}
SHIFTS = (-2, -1, 0, 1, 2)


def level_of(row):
    """Our level: the manifest's column, or for discs above L1L2 the first word of the note."""
    return row['level'] or (row['note'].split() or [''])[0]


def disc_signal(pixels, corners, fraction=0.3):
    """Mean gray value inside the disc quadrilateral shrunk to `fraction` about its centre."""
    quad = np.array(corners).reshape(4, 2)[[0, 1, 3, 2]]  # upper ant., upper post., lower post., lower ant.
    centre = quad.mean(0)
    inner = centre + fraction * (quad - centre)
    mask = Image.new('L', (pixels.shape[1], pixels.shape[0]), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in inner], fill=1)
    mask = np.array(mask, bool)
    return float(pixels[mask].mean()) if mask.any() else float('nan')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--shared', default=os.path.join(HERE, '..', '..', 'shared'))
    ap.add_argument('--per-slice', action='store_true', help='print each slice\'s correlation by shift')
    ap.add_argument('--boot', type=int, default=1000)
    args = ap.parse_args()
    data = os.path.join(args.shared, 'data', 'spider-t2')
    if not os.path.isdir(data):
        sys.exit(f'{data} is missing: this check reads the SPIDER slices (../shared/data/spider-t2)')
    pfirrmann = {}
    with open(os.path.join(data, 'radiological_gradings.csv')) as f:
        for r in csv.DictReader(f):
            pfirrmann[(r['Patient'], int(r['IVD label']))] = float(r['Pfirrman grade'])
    discs = defaultdict(list)
    for path in MANIFESTS:
        with open(path) as f:
            for r in csv.DictReader(f):
                if level_of(r) in IVD:
                    corners = [float(r[k]) for k in ('x1', 'y1', 'x2', 'y2', 'x3', 'y3', 'x4', 'y4')]
                    discs[os.path.basename(r['image'])].append((IVD[level_of(r)], corners))
    rows = []  # (slice, patient, our IVD label, standardised signal)
    for name, ds in sorted(discs.items()):
        pixels = np.asarray(Image.open(os.path.join(data, name)).convert('L'), float)
        patient = name.split('_')[1]
        signal = np.array([disc_signal(pixels, c) for _, c in ds])
        z = (signal - np.nanmean(signal)) / (np.nanstd(signal) + 1e-9)
        rows += [(name, patient, ivd, s) for (ivd, _), s in zip(ds, z)]
    print(f'{len(rows)} discs of {len(discs)} slices, {len({r[1] for r in rows})} patients')

    def graded(shift):
        """The discs SPIDER graded at our level + `shift`: slice, patient, signal, grade."""
        kept = [(name, patient, z, pfirrmann[(patient, ivd + shift)])
                for name, patient, ivd, z in rows
                if (patient, ivd + shift) in pfirrmann and not np.isnan(z)]
        return [np.array(column) for column in zip(*kept)]

    patients = sorted({r[1] for r in rows})
    rng = np.random.default_rng(1)
    # Each draw: how many times each patient is drawn, the weight of all their discs.
    draws = [np.bincount(rng.integers(0, len(patients), len(patients)), minlength=len(patients))
             for _ in range(args.boot)]
    print('shift  discs  Spearman(signal, Pfirrmann)  95 % bootstrap over patients')
    for shift in SHIFTS:
        _, patient, z, grade = graded(shift)
        index = np.searchsorted(patients, patient)
        boot = [spearmanr(np.repeat(z, d[index]), np.repeat(grade, d[index]))[0] for d in draws]
        lo, hi = np.percentile(boot, [2.5, 97.5])
        label = 'our count' if shift == 0 else f'ours {shift:+d}'
        print(f'{shift:+d} ({label:9s}) {len(z):5d}  {spearmanr(z, grade)[0]:+.3f}  ({lo:+.3f} to {hi:+.3f})')
    if args.per_slice:
        print('\nslice                      discs  r(-1)  r(0)   r(+1)  best')
        by_shift = {shift: graded(shift) for shift in (-1, 0, 1)}
        for name in sorted({r[0] for r in rows}):
            r = {}
            for shift, (slices, _, z, grade) in by_shift.items():
                mine = slices == name
                ok = mine.sum() >= 4 and len(set(grade[mine])) > 1
                r[shift] = spearmanr(z[mine], grade[mine])[0] if ok else float('nan')
            finite = {s: v for s, v in r.items() if not np.isnan(v)}
            best = min(finite, key=finite.get) if finite else None
            flag = '' if best in (0, None) else f'{best:+d}'
            discs = sum(1 for row in rows if row[0] == name)
            print(f'{name:26s} {discs:5d}  ' + '  '.join(f'{r[s]:+.2f}' for s in (-1, 0, 1)) + f'  {flag}')

if __name__ == '__main__':
    main()
