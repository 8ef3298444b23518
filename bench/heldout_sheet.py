#!/usr/bin/env python3
"""A contact sheet of held-out real slices, to check detection and classification by eye.

Each slice as `endplate evaluate-detector --overlays` draws it (our corners blue; detected discs
green at the right level, orange at a wrong one, red where no true disc is), cropped to its
discs, with each detected lumbar disc's level, P(lesion) from `endplate classify` on the
detected corners and SPIDER's label (lesion / normal; graded on the whole volume, so noisy)
written beside it: green where the lesion call agrees with the label, red where it does not.

  python3 bench/heldout_sheet.py [MANIFEST] [OUT.png] [--bin target/debug/endplate]
  (default: data/spider/corners-heldout.csv, the detector's 12 test patients)
"""
import csv, json, os, subprocess, sys, tempfile
from PIL import Image, ImageDraw, ImageFont

args = sys.argv[1:]
binary = args[args.index('--bin') + 1] if '--bin' in args else 'target/debug/endplate'
rest = [a for i, a in enumerate(args) if a != '--bin' and (i == 0 or args[i - 1] != '--bin')]
manifest = next((a for a in rest if a.endswith('.csv')), 'data/spider/corners-heldout.csv')
out = next((a for a in rest if a.endswith('.png')), 'target/heldout-sheet.png')
base = os.path.dirname(os.path.abspath(manifest))
rows = list(csv.DictReader(open(manifest)))
# SPIDER's label per (image, level): the manifest's `label`, else its `spider_lesion` column.
truth = {}
for r in rows:
    lab = r['label'] or {'1': 'lesion', '0': 'normal'}.get(r.get('spider_lesion', ''), '')
    truth[(os.path.basename(r['image']), r['level'])] = lab

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([binary, 'evaluate-detector', '--manifest', manifest, '--overlays', tmp],
                   check=True, capture_output=True)
    # One row per slice with empty corners: classify detects and classifies every lumbar disc.
    detect = os.path.join(tmp, 'detect.csv')
    with open(detect, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['image', 'subject', 'level', 'label'] + [f'{a}{k}' for k in range(1, 5) for a in 'xy'])
        for image in dict.fromkeys(r['image'] for r in rows):
            w.writerow([os.path.join(base, image), 'x', '', ''] + [''] * 8)
    res = subprocess.run([binary, 'classify', '--manifest', detect, '--json'],
                         check=True, capture_output=True, text=True)
    found = {}
    for d in json.loads(res.stdout)['results']:
        found.setdefault(os.path.basename(d['image']), []).append(d)
    tiles = []
    for name in sorted(os.listdir(tmp)):
        if not name.endswith('.png'):
            continue
        im = Image.open(os.path.join(tmp, name)).convert('RGB')
        draw = ImageDraw.Draw(im)
        font = ImageFont.load_default(size=max(11, im.width // 28))
        xs, ys = [], []
        for d in found.get(name, []):
            p = 1 - d['probabilities']['normal']
            xs += [c[0] for c in d['corners']]
            ys += [c[1] for c in d['corners']]
            lab = truth.get((name, d['level']), '')
            agree = lab and (p >= 0.5) == (lab == 'lesion')
            x = max(c[0] for c in d['corners']) + 6
            y = sum(c[1] for c in d['corners']) / 4 - 6
            draw.text((x, y), f"{d['level']} {p:.2f} {lab or '?'}", font=font,
                      fill=(60, 220, 60) if agree else (255, 70, 70))
        for r in rows:
            if os.path.basename(r['image']) == name:
                xs += [float(r[f'x{k}']) for k in range(1, 5)]
                ys += [float(r[f'y{k}']) for k in range(1, 5)]
        if xs:
            w = max(xs) - min(xs)
            im = im.crop((max(0, min(xs) - 0.8 * w), max(0, min(ys) - 0.5 * w),
                          min(im.width, max(xs) + 2.2 * w), min(im.height, max(ys) + 0.5 * w)))
        draw = ImageDraw.Draw(im)
        draw.text((4, 4), name, fill=(255, 255, 0), font=font)
        tiles.append(im.resize((360, int(360 * im.height / im.width))))
cols = 4
height = [max(t.height for t in tiles[i:i + cols]) for i in range(0, len(tiles), cols)]
sheet = Image.new('RGB', (cols * 360, sum(height)))
y = 0
for r, h in enumerate(height):
    for c, t in enumerate(tiles[r * cols:(r + 1) * cols]):
        sheet.paste(t, (c * 360, y))
    y += h
sheet.save(out)
print(f'{len(tiles)} slices -> {out}')
