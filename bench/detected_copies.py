#!/usr/bin/env python3
"""Would a classifier that also learnt from the detector's corners change its call less when the
page's detected corners replace hand-placed ones? Writes two training manifests for the
detector's training patients (all of data/spider/manifest.csv but the test and validation
patients of the detector, so both can measure the change afterwards):

  OUT/hand.csv           the labelled discs with our hand-checked corners;
  OUT/hand+detected.csv  the same, plus a copy of every disc with the bundled detector's corners
                         where it found the disc at its level (centre within half a disc width of
                         ours), same subject, so a split keeps both copies on one side.

Image paths are absolute, so the files can live anywhere. Then train both alike and measure:

  python3 bench/detected_copies.py target/detected-copies
  for m in hand hand+detected; do
    target/debug/endplate train --manifest target/detected-copies/$m.csv \\
      --out target/detected-copies/$m.onnx --init target/real-experiments/phantom-only.onnx \\
      --unfreeze top2 --epochs 5 --lr 3e-4 --corner-jitter 0.03 --split-by subject --seed 1 --keep-last
    python3 bench/detected_vs_hand.py data/spider/corners-heldout.csv --model target/detected-copies/$m.onnx
    python3 bench/detected_vs_hand.py data/spider/detector-validate.csv --model target/detected-copies/$m.onnx
  done
"""
import csv
import os
import sys

from detected_vs_hand import COLS, classify, same_disc

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
SPIDER = os.path.join(ROOT, 'data/spider')


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'target/detected-copies'
    os.makedirs(out, exist_ok=True)
    held = {r['subject'] for f in ('corners-heldout.csv', 'detector-validate.csv')
            for r in csv.DictReader(open(os.path.join(SPIDER, f)))}
    train = [r for r in csv.DictReader(open(os.path.join(SPIDER, 'manifest.csv')))
             if r['label'] and r['subject'] not in held]
    for r in train:
        r['image'] = os.path.normpath(os.path.join(SPIDER, r['image']))
    detected = classify(train, False, SPIDER, os.path.join(ROOT, 'target/debug/endplate'))
    copies = []
    for r in train:
        d = detected.get((os.path.basename(r['image']), r['level']))
        hand = [[float(r[f'x{k}']), float(r[f'y{k}'])] for k in range(1, 5)]
        if d is None or not same_disc(hand, d['corners']):
            continue  # not found, or another disc: the chain is shifted on this slice
        corners = [f'{v:.2f}' for p in d['corners'] for v in p]
        copies.append({**{k: r[k] for k in COLS[:4]}, **dict(zip(COLS[4:], corners))})
    for name, rows in (('hand', train), ('hand+detected', train + copies)):
        path = os.path.join(out, f'{name}.csv')
        with open(path + '.tmp', 'w', newline='') as f:
            w = csv.DictWriter(f, COLS, extrasaction='ignore')
            w.writeheader()
            w.writerows(rows)
        os.replace(path + '.tmp', path)
    print(f'{len(train)} labelled discs of {len({r["subject"] for r in train})} patients; '
          f'{len(copies)} detected copies -> {out}/hand.csv, {out}/hand+detected.csv')


if __name__ == '__main__':
    main()
