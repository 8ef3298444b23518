#!/usr/bin/env python3
"""Merge the annotators' corner CSVs into the project's SPIDER corner manifests.

Adds SPIDER's binary endplate label (extra column spider_lesion: 1 when UP or LOW endplate is
graded 1), the pixel spacing from slices.csv (spacing_mm), how the corners were placed (source)
and the annotator's note; splits by patient into training and held-out files.
"""
import csv, glob, os, sys
DATA = '/work/shared/data/spider-t2'
OUT = sys.argv[1]
REL = '../../../shared/data/spider-t2/'
spacing = {}
for r in csv.DictReader(open(f'{DATA}/slices.csv')):
    s = r['pixel_spacing_mm'].strip('[]').split(',')
    spacing[r['image']] = (float(s[0]) + float(s[1])) / 2
lesion = {}
for r in csv.DictReader(open(f'{DATA}/radiological_gradings.csv')):
    lab = int(r['IVD label'])
    if 1 <= lab <= 5:
        level = ['L5S1', 'L4L5', 'L3L4', 'L2L3', 'L1L2'][lab - 1]
        lesion[(r['Patient'], level)] = int(r['UP endplate'] == '1' or r['LOW endplate'] == '1')
rows = []
for f in sorted(glob.glob('/work/annot/out/set*.csv')):
    for r in csv.DictReader(open(f)):
        rows.append(r)
patients = sorted({r['subject'] for r in rows}, key=lambda s: int(s.split('_')[1]))
# Every fourth patient, in patient-number order, is held out.
held = set(patients[3::4])
cols = ['image', 'subject', 'level', 'label', 'x1', 'y1', 'x2', 'y2', 'x3', 'y3', 'x4', 'y4',
        'spacing_mm', 'spider_lesion', 'source', 'note']
order = {'L1L2': 0, 'L2L3': 1, 'L3L4': 2, 'L4L5': 3, 'L5S1': 4}
rows.sort(key=lambda r: (int(r['subject'].split('_')[1]), order[r['level']]))
for name, keep in (('train', lambda p: p not in held), ('heldout', lambda p: p in held)):
    with open(f'{OUT}/corners-{name}.csv', 'w', newline='') as fh:
        w = csv.writer(fh, lineterminator='\n')
        w.writerow(cols)
        n = 0
        for r in rows:
            if not keep(r['subject']):
                continue
            pid = r['subject'].split('_')[1]
            lz = lesion.get((pid, r['level']), '')
            w.writerow([REL + r['image'], r['subject'], r['level'], ''] +
                       [f"{float(r[k]):.1f}" for k in ['x1', 'y1', 'x2', 'y2', 'x3', 'y3', 'x4', 'y4']] +
                       [f"{spacing[r['image']]:.4f}", lz, 'hand', r.get('note', '').replace('\n', ' ')])
            n += 1
        print(name, n, 'discs')
print(len(patients), 'patients;', len(held), 'held out')
