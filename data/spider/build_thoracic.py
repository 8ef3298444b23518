#!/usr/bin/env python3
"""Build thoracic.csv: the discs above L1L2 (T12L1, T11T12, ...) of the real slices that SPIDER
graded, with the bundled detector's corners and SPIDER's label — more real training discs for
the classifier, never a test of it (the product classifies L1L2-L5S1 only, SPEC.md).

SPIDER's radiologists graded every disc of the volume, counted from the bottom: `IVD label` 6 is
T12/L1, 7 T11/T12, 8 T10/T11, 9 T9/T10 (348 graded discs above L1/L2 of the 172 patients). The
lumbar manifest's levels are SPIDER's count (build_manifest.py), so each slice's chain is
anchored there: the detected disc that sits on manifest.csv's L1L2 (its centre within half a
disc width) is taken as L1L2, whatever level the detector named, and the detected discs above
it in the detector's own chain are T12L1, T11T12, ... in order. A disc is kept only when its step
from the disc below is a plausible spine step (0.6 to 1.6 times the manifest's L2L3 to L1L2
step, and no more than 45 degrees off its direction) and its four corners lie inside the slice.
Slices stored upside down, and slices whose L1L2 the detector did not find, give none.

The corners are the detector's first-view proposals, unchecked by hand (source `detected`;
the corner views that refine the lumbar discs do not run above L1L2), so expect them a little
coarser than manifest.csv's. The level goes in the note (the manifest's `level` column takes
L1L2-L5S1 only); the subject is the patient's, as in manifest.csv, so `train` keeps both files'
discs of a patient on one side of every split. Label noise as in manifest.csv: graded on the
whole volume, the slice is its middle.

  endplate detect --image SLICE --json > DIR/NAME.json     (for every slice; NAME = file stem)
  python3 data/spider/build_thoracic.py DIR > data/spider/thoracic.csv
"""
import csv, json, math, os, sys

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, '../../../shared/data/spider-t2')
REL = '../../../shared/data/spider-t2/'
ABOVE = ['T12L1', 'T11T12', 'T10T11', 'T9T10']
LUMBAR = ['L1L2', 'L2L3', 'L3L4', 'L4L5', 'L5S1']
UPSIDE_DOWN = {'spider_57_t2.png', 'spider_35_t2_SPACE.png', 'spider_50_t2_SPACE.png',
               'spider_55_t2_SPACE.png', 'spider_57_t2_SPACE.png'}

if len(sys.argv) != 2:
    sys.exit(__doc__)
detections = sys.argv[1]

grade = {}
for r in csv.DictReader(open(f'{DATA}/radiological_gradings.csv')):
    k = int(r['IVD label'])
    if 6 <= k <= 5 + len(ABOVE):
        grade[(r['Patient'], ABOVE[k - 6])] = r['UP endplate'] == '1' or r['LOW endplate'] == '1'
size, spacing = {}, {}
for r in csv.DictReader(open(f'{DATA}/slices.csv')):
    s = r['pixel_spacing_mm'].strip('[]').split(',')
    spacing[r['image']] = (float(s[0]) + float(s[1])) / 2
lumbar = {}
for r in csv.DictReader(open(os.path.join(HERE, 'manifest.csv'))):
    c = [float(r[k]) for k in ('x1', 'y1', 'x2', 'y2', 'x3', 'y3', 'x4', 'y4')]
    lumbar[(os.path.basename(r['image']), r['level'])] = (r['subject'], c)


def centre(c):
    return (sum(c[0::2]) / 4, sum(c[1::2]) / 4)


def width(c):
    return (math.dist(c[0:2], c[2:4]) + math.dist(c[4:6], c[6:8])) / 2


def from_sacrum(level):
    order = LUMBAR[::-1] + ABOVE
    return order.index(level) if level in order else None


w = csv.writer(sys.stdout, lineterminator='\n')
w.writerow(['image', 'subject', 'level', 'label', 'x1', 'y1', 'x2', 'y2', 'x3', 'y3', 'x4', 'y4',
            'spacing_mm', 'series', 'source', 'note'])
counts = {'slices': 0, 'no anchor': 0, 'kept': 0, 'implausible step': 0, 'outside': 0,
          'ungraded': 0}
for image in sorted({k[0] for k in lumbar}):
    if image in UPSIDE_DOWN or (image, 'L1L2') not in lumbar or (image, 'L2L3') not in lumbar:
        continue
    counts['slices'] += 1
    subject, l1l2 = lumbar[(image, 'L1L2')]
    _, l2l3 = lumbar[(image, 'L2L3')]
    found = json.load(open(os.path.join(detections, image[:-4] + '.json')))
    discs = [(from_sacrum(d['level']), [v for p in d['corners'] for v in p])
             for d in found['discs'] if d.get('level') and from_sacrum(d['level']) is not None]
    anchor = [(k, c) for k, c in discs if math.dist(centre(c), centre(l1l2)) < width(l1l2) / 2]
    if not anchor:
        counts['no anchor'] += 1
        continue
    k0 = anchor[0][0]
    by_index = dict(discs)
    step = (centre(l1l2)[0] - centre(l2l3)[0], centre(l1l2)[1] - centre(l2l3)[1])
    below = l1l2
    wd, ht = Image.open(os.path.join(DATA, image)).size
    for j, level in enumerate(ABOVE, start=1):
        c = by_index.get(k0 + j)
        if c is None:
            break
        s = (centre(c)[0] - centre(below)[0], centre(c)[1] - centre(below)[1])
        ratio = math.hypot(*s) / math.hypot(*step)
        cos = (s[0] * step[0] + s[1] * step[1]) / (math.hypot(*s) * math.hypot(*step))
        if not (0.6 <= ratio <= 1.6 and cos >= math.cos(math.radians(45))):
            counts['implausible step'] += 1
            break
        if not all(0 <= x < wd for x in c[0::2]) or not all(0 <= y < ht for y in c[1::2]):
            counts['outside'] += 1
            break
        g = grade.get((subject.split('_')[1], level))
        if g is None:
            counts['ungraded'] += 1
        else:
            counts['kept'] += 1
            w.writerow([REL + image, subject, '', 'lesion' if g else 'normal'] +
                       [f'{v:.1f}' for v in c] +
                       [f'{spacing[image]:.4f}', 'SPACE' if 'SPACE' in image else 'TSE', 'detected',
                        f'{level} (SPIDER IVD label {6 + ABOVE.index(level)}); detector corners, unchecked'])
        below = c
print(counts, file=sys.stderr)
