#!/usr/bin/env python3
"""How much does a classification move when hand-placed corners move by a known amount?

The counterpart of detected_vs_hand.py with the detector taken out: every disc of a corner
manifest (default: the detector's 12 test patients) is classified with its hand-placed corners,
then again with each corner moved by an isotropic Gaussian whose median displacement is the
given number of millimetres (the detector's target is 1.5 mm; the bundled detector's median on
these patients is 2.4 mm). A draw that leaves the disc without height is drawn again. Reports
the share of discs whose predicted class, and whose lesion call (P(lesion) >= 0.5), changes.

  python3 bench/corner_noise.py [MANIFEST] [--mm 1.0,2.4] [--seeds 2] [--model M.onnx] [--bin target/debug/endplate]
"""
import csv, json, math, os, random, subprocess, sys, tempfile

args = sys.argv[1:]
opt = lambda k, d: args[args.index(k) + 1] if k in args else d
manifest = next((a for a in args if a.endswith('.csv')), 'data/spider/corners-heldout.csv')
binary = opt('--bin', 'target/debug/endplate')
model = ['--model', opt('--model', '')] if '--model' in args else []
mms = [float(x) for x in opt('--mm', '1.0,2.4').split(',')]
seeds = int(opt('--seeds', '2'))
base = os.path.dirname(os.path.abspath(manifest))
cols = ['image', 'subject', 'level', 'label', 'x1', 'y1', 'x2', 'y2', 'x3', 'y3', 'x4', 'y4']
rows = list(csv.DictReader(open(manifest)))


def height(r):
    """The disc's height in pixels: the smaller distance of one endplate's midpoint from the
    other endplate's line (what the ROI code checks before it cuts)."""
    p = [(float(r['x%d' % i]), float(r['y%d' % i])) for i in range(1, 5)]

    def off_line(a, b, m):
        (ax, ay), (bx, by) = a, b
        n = math.hypot(bx - ax, by - ay) or 1e-9
        return abs((bx - ax) * (m[1] - ay) - (by - ay) * (m[0] - ax)) / n

    mid = lambda a, b: ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    return min(off_line(p[0], p[1], mid(p[2], p[3])), off_line(p[2], p[3], mid(p[0], p[1])))


def classify(rs):
    with tempfile.NamedTemporaryFile('w', suffix='.csv', delete=False) as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rs:
            w.writerow([os.path.join(base, r['image']), r['subject'], r['level'], '']
                       + [r[c] for c in cols[4:]])
    o = subprocess.run([binary, 'classify', '--manifest', f.name, '--json'] + model,
                       capture_output=True, text=True)
    os.unlink(f.name)
    if o.returncode:
        sys.exit(o.stderr)
    return json.loads(o.stdout)['results']


# Discs too thin to survive any noise (a 2-pixel disc) are left out, and said.
thin = [r for r in rows if height(r) < 4.0]
rows = [r for r in rows if height(r) >= 4.0]
ref = classify(rows)
print(f"{manifest}: {len(rows)} discs ({len(thin)} thinner than 4 px left out)")
lesion = lambda d: 1 - d['probabilities']['normal'] >= 0.5
for mm in mms:
    for seed in range(1, seeds + 1):
        rng = random.Random(seed)
        moved, dist = [], []
        for r in rows:
            sigma = mm / 1.1774 / float(r['spacing_mm'])  # median of a 2-D Gaussian radius
            while True:
                q, d = dict(r), []
                for i in range(1, 5):
                    dx, dy = rng.gauss(0, sigma), rng.gauss(0, sigma)
                    d.append(math.hypot(dx, dy) * float(r['spacing_mm']))
                    q['x%d' % i] = f"{float(r['x%d' % i]) + dx:.2f}"
                    q['y%d' % i] = f"{float(r['y%d' % i]) + dy:.2f}"
                if height(q) >= max(0.5 * height(r), 4.0):
                    break
            moved.append(q)
            dist.extend(d)
        out = classify(moved)
        dist.sort()
        cls = sum(a['label'] != b['label'] for a, b in zip(ref, out))
        les = sum(lesion(a) != lesion(b) for a, b in zip(ref, out))
        n = len(rows)
        print(f"corners moved {dist[len(dist) // 2]:.2f} mm at the median (seed {seed}): "
              f"class changed on {cls} / {n} ({100 * cls / n:.1f} %), "
              f"lesion call on {les} / {n} ({100 * les / n:.1f} %)")
