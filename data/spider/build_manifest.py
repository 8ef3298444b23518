#!/usr/bin/env python3
"""Build the labelled real manifest (manifest.csv) from every corner file of the project.

Corners: corners-train.csv and corners-heldout.csv (placed by hand, source `hand`) and the
checked detector proposals of the later annotation rounds (source `detected`, `corrected` or
`hand`, per disc). Label: SPIDER's binary endplate grading of that patient's disc, `lesion` when
the upper or the lower endplate is graded 1 ("endplate changes / Schmorl nodes"), else
`normal`; discs SPIDER did not grade keep an empty label. Levels are SPIDER's `IVD label`
counted from the bottom (1 = L5/S1 ... 5 = L1/L2).

SPIDER's other gradings of each disc follow as 0/1 columns, for `endplate train --auxiliary`
(learnt next to the label, never an input): `up_endplate` and `low_endplate` (the label's two
halves), `modic` (any Modic type), `narrowing`, `herniation`, `bulging`, `spondylolisthesis`,
and the Pfirrmann grade as three thresholds `pfirrmann_3plus`, `pfirrmann_4plus`, `pfirrmann_5`.

  python3 data/spider/build_manifest.py ROUND_CSV... > data/spider/manifest.csv
  python3 data/spider/build_manifest.py --from-manifest data/spider/manifest.csv > new.csv

The second form takes corners, sources and notes from an existing manifest (the round files
are not kept in the project) and gives every disc SPIDER's label and gradings afresh.
"""
import csv, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, '../../../shared/data/spider-t2')
REL = '../../../shared/data/spider-t2/'
ORDER = ['L1L2', 'L2L3', 'L3L4', 'L4L5', 'L5S1']

spacing = {}
for r in csv.DictReader(open(f'{DATA}/slices.csv')):
    s = r['pixel_spacing_mm'].strip('[]').split(',')
    spacing[r['image']] = (float(s[0]) + float(s[1])) / 2
GRADINGS = ['up_endplate', 'low_endplate', 'modic', 'narrowing', 'herniation', 'bulging',
            'spondylolisthesis', 'pfirrmann_3plus', 'pfirrmann_4plus', 'pfirrmann_5']
grade, gradings = {}, {}
for r in csv.DictReader(open(f'{DATA}/radiological_gradings.csv')):
    k = int(r['IVD label'])
    if 1 <= k <= 5:
        key = (r['Patient'], ORDER[5 - k])
        grade[key] = r['UP endplate'] == '1' or r['LOW endplate'] == '1'
        p = int(r['Pfirrman grade'])
        gradings[key] = [r['UP endplate'], r['LOW endplate'], str(int(r['Modic'] != '0')),
                         r['Disc narrowing'], r['Disc herniation'], r['Disc bulging'],
                         r['Spondylolisthesis'], str(int(p >= 3)), str(int(p >= 4)), str(int(p >= 5))]

# Discs whose corners the ROI cannot use; they stay in the file without a label (so training
# and evaluation skip them), with the reason in the note.
UNUSABLE = {
    ('spider_209_t2.png', 'L5S1'): 'no label here: with the anterolisthesis the endplates are '
                                   'nearly collinear and the ROI cannot be cut',
}
# Slices stored upside down (sacrum at the top; the data set's README says every slice was
# turned upright): their ROIs would be mirrored top to bottom, unlike every other disc, so their
# discs keep their corners but no label.
UPSIDE_DOWN = {'spider_57_t2.png', 'spider_35_t2_SPACE.png', 'spider_50_t2_SPACE.png',
               'spider_55_t2_SPACE.png', 'spider_57_t2_SPACE.png'}

rows = {}
def add(r, source):
    image = os.path.basename(r['image'])
    if r['level'] not in ORDER:
        return
    rows[(image, r['level'])] = dict(r, image=image, source=source)

rounds = sys.argv[1:]
if rounds[:1] == ['--from-manifest']:
    if len(rounds) != 2:
        sys.exit('usage: build_manifest.py --from-manifest data/spider/manifest.csv > new.csv')
    for r in csv.DictReader(open(rounds[1])):
        add(r, r['source'])
    rounds = []
else:
    for name in ('corners-train.csv', 'corners-heldout.csv'):
        for r in csv.DictReader(open(os.path.join(HERE, name))):
            add(r, r.get('source') or 'hand')
for path in rounds:
    for r in csv.DictReader(open(path)):
        src = (r.get('source') or '').strip()
        if src not in ('detected', 'corrected', 'hand'):
            sys.exit(f'{path}: row {r}: source must be detected, corrected or hand')
        add(r, src)

w = csv.writer(sys.stdout, lineterminator='\n')
w.writerow(['image', 'subject', 'level', 'label', 'x1', 'y1', 'x2', 'y2', 'x3', 'y3', 'x4', 'y4',
            'spacing_mm', 'series', 'source', 'note'] + GRADINGS)
key = lambda k: (int(rows[k]['subject'].split('_')[1]), 'SPACE' in k[0], ORDER.index(k[1]))
counts = {}
for k in sorted(rows, key=key):
    r = rows[k]
    pid = r['subject'].split('_')[1]
    g = grade.get((pid, r['level']))
    label = '' if g is None else ('lesion' if g else 'normal')
    note = (r.get('note') or '').replace('\n', ' ')
    # A reason is added once, so a manifest rebuilt from itself keeps its notes.
    also = lambda note, why: note if why in note else '; '.join(x for x in (note, why) if x)
    if k in UNUSABLE:
        label, note = '', also(note, UNUSABLE[k])
    if k[0] in UPSIDE_DOWN:
        label, note = '', also(note, 'no label here: slice stored upside down')
    series = 'SPACE' if 'SPACE' in r['image'] else 'TSE'
    counts[(series, label)] = counts.get((series, label), 0) + 1
    w.writerow([REL + r['image'], r['subject'], r['level'], label] +
               [f"{float(r[c]):.1f}" for c in ('x1', 'y1', 'x2', 'y2', 'x3', 'y3', 'x4', 'y4')] +
               [f"{spacing[r['image']]:.4f}", series, r['source'], note] +
               gradings.get((pid, r['level']), [''] * len(GRADINGS)))
print(f'{len(rows)} discs of {len({k[0] for k in rows})} slices, '
      f'{len({rows[k]["subject"] for k in rows})} patients; (series, label): {sorted(counts.items())}',
      file=sys.stderr)
