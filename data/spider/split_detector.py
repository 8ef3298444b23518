#!/usr/bin/env python3
"""Split manifest.csv into the detector's training and validation manifests.

The 12 patients of corners-heldout.csv stay out of both: they are the detector's test set,
never trained on and never used to choose an epoch. Slices stored upside down are left out:
their sacrum is at the top, and the detector's level chain, which climbs upwards from the
sacrum, can never name them; they go to upside-down.csv instead, the check of
`endplate fit-orientation` (which way up is a slice stored?). Of the remaining patients, VALIDATE
(seeded) choose the best epoch.

    python3 data/spider/split_detector.py     # writes detector-train.csv, detector-validate.csv,
                                              # upside-down.csv
"""
import csv
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
VALIDATE = 15
SEED = 7

with open(os.path.join(HERE, 'corners-heldout.csv')) as f:
    heldout = {r['subject'] for r in csv.DictReader(f)}
with open(os.path.join(HERE, 'manifest.csv')) as f:
    reader = csv.DictReader(f)
    # The detector needs no grading: its files keep the columns up to the annotator's note.
    fields = reader.fieldnames[:reader.fieldnames.index('note') + 1]
    every = list(reader)
upside = [r for r in every if 'upside down' in r['note'].lower()]
rows = [r for r in every if r['subject'] not in heldout and r not in upside]
subjects = sorted({r['subject'] for r in rows}, key=lambda s: int(s.split('_')[1]))
validate = set(random.Random(SEED).sample(subjects, VALIDATE))
for name, part in (('detector-train.csv', [r for r in rows if r['subject'] not in validate]),
                   ('detector-validate.csv', [r for r in rows if r['subject'] in validate]),
                   ('upside-down.csv', upside)):
    tmp = os.path.join(HERE, name + '.tmp')
    with open(tmp, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator='\n', extrasaction='ignore')
        w.writeheader()
        w.writerows(part)
    os.replace(tmp, os.path.join(HERE, name))
    print(f"{name}: {len({r['image'] for r in part})} slices, "
          f"{len({r['subject'] for r in part})} patients, {len(part)} discs")
