#!/usr/bin/env python3
"""How much does a classification depend on detected instead of hand-placed corners?

For every disc of a corner manifest (default: the detector's held-out real slices,
data/spider/corners-heldout.csv, never used to train the detector), classify it twice with the
same model: with its hand-placed corners, and with the corners the bundled detector finds at the
same level (a manifest row with empty corners). Reports the share of discs whose predicted class
changes, whose lesion call (P(lesion) >= 0.5) changes, the largest and median change of any
calibrated probability, and the discs the detector did not find at their level.

  python3 bench/detected_vs_hand.py [MANIFEST] [--model M.onnx] [--detector D.onnx] [--bin target/debug/endplate]
  python3 bench/detected_vs_hand.py [MANIFEST] --cv target/real-experiments/real-phantoms-all-long-mirror

With --cv, each disc is classified by the fold model of that cross-validation that held its
patient out (fold-K/predictions.csv names them), so the figure is a recipe's on patients its
network never saw, where the bundled model has seen every SPIDER patient.

With --jitter N [--frac F] (default F 0.03, training's --corner-jitter), each disc's
probabilities, both with the hand-placed and with the detected corners, are the mean over its
own corners and N copies whose corners move by a normal draw of sd F x the disc's width (a
move that leaves no disc keeps the disc's own corners): does smoothing the classifier over
corner placement make its calls steadier between two placements?
"""
import csv, json, os, random, subprocess, sys, tempfile

from corner_averaging import leaves_a_disc

from real_baselines import held_out  # the patients a fold folder held out

COLS = ['image', 'subject', 'level', 'label', 'x1', 'y1', 'x2', 'y2', 'x3', 'y3', 'x4', 'y4']


def classify_list(rows, with_corners, base, binary='target/debug/endplate', extra=()):
    """`endplate classify --manifest --json` on `rows` (images relative to `base`), with their
    corners or with the corner cells empty, so the detector places them (each image detected
    once, the row's level kept): its results in order, one per row where corners are given."""
    with tempfile.NamedTemporaryFile('w', suffix='.csv', delete=False) as f:
        w = csv.writer(f)
        w.writerow(COLS)
        for r in rows:
            corners = [r[c] for c in COLS[4:]] if with_corners else [''] * 8
            w.writerow([os.path.join(base, r['image']), r['subject'], r['level'], ''] + corners)
    out = subprocess.run([binary, 'classify', '--manifest', f.name, '--json', *extra],
                         capture_output=True, text=True)
    os.unlink(f.name)
    if out.returncode:
        sys.exit(f'endplate classify {" ".join(extra)} failed: {out.stderr.strip()}')
    return json.loads(out.stdout)['results']


def classify(rows, with_corners, base, binary='target/debug/endplate', extra=(), key=None):
    """[`classify_list`]'s results keyed by (image file name, level), or by the rows' own `key`
    column (moved copies of one disc)."""
    results = classify_list(rows, with_corners, base, binary, extra)
    if key:
        return {r[key]: d for r, d in zip(rows, results)}
    return {(os.path.basename(d['image']), d['level']): d for d in results}


def centre(c):
    return sum(p[0] for p in c) / 4, sum(p[1] for p in c) / 4


def width(c):
    return (((c[1][0] - c[0][0]) ** 2 + (c[1][1] - c[0][1]) ** 2) ** 0.5
            + ((c[3][0] - c[2][0]) ** 2 + (c[3][1] - c[2][1]) ** 2) ** 0.5) / 2


def same_disc(hand, detected):
    """The detected disc of that level is the hand-placed one: centres within half a width (the
    rule of evaluate-detector); a chain shifted by one level names another disc."""
    (hx, hy), (dx, dy) = centre(hand), centre(detected)
    return ((hx - dx) ** 2 + (hy - dy) ** 2) ** 0.5 <= width(hand) / 2


def jittered(results, n, frac, seed=1):
    """Manifest rows of `n` moved copies of every classified disc, keyed back to it."""
    rng = random.Random(seed)
    rows = []
    for (image, level), d in sorted(results.items()):
        c = d['corners']
        w = width(c)
        for k in range(n):
            q = [v + rng.gauss(0, frac * w) for p in c for v in p]
            if not leaves_a_disc(q):
                q = [v for p in c for v in p]
            rows.append({'image': d['image'], 'subject': f'{image}|{level}|{k}', 'level': level,
                         **dict(zip(COLS[4:], (f'{v:.3f}' for v in q)))})
    return rows


def smoothed(results, n, frac, binary, extra):
    """`results` with each disc's probabilities averaged over itself and `n` moved copies, and
    its label the class of that mean."""
    if n == 0:
        return results
    moved = classify(jittered(results, n, frac), True, '', binary, extra, key='subject')
    out = {}
    for key, d in results.items():
        probs = [d['probabilities']] + [moved[f'{key[0]}|{key[1]}|{k}']['probabilities'] for k in range(n)]
        mean = {c: sum(p[c] for p in probs) / len(probs) for c in d['probabilities']}
        out[key] = dict(d, probabilities=mean, label=max(mean, key=mean.get))
    return out


def main():
    args = sys.argv[1:]
    opt = lambda k, d: args[args.index(k) + 1] if k in args else d
    manifest = next((a for a in args if a.endswith('.csv')), 'data/spider/corners-heldout.csv')
    extra = ['--model', opt('--model', '')] if '--model' in args else []
    extra += ['--detector', opt('--detector', '')] if '--detector' in args else []
    base = os.path.dirname(os.path.abspath(manifest))
    rows = list(csv.DictReader(open(manifest)))
    binary = opt('--bin', 'target/debug/endplate')
    n, frac = int(opt('--jitter', 0)), float(opt('--frac', 0.03))
    if '--cv' in args:
        cv = opt('--cv', '')
        hand, det, seen = {}, {}, set()
        for fold in sorted(d for d in os.listdir(cv) if d.startswith('fold-')):
            held = held_out(os.path.join(cv, fold))
            mine = [r for r in rows if r['subject'] in held]
            seen |= held
            if mine:
                model = ['--model', os.path.join(cv, fold, 'model.onnx')] + extra
                hand.update(smoothed(classify(mine, True, base, binary, model), n, frac, binary, model))
                det.update(smoothed(classify(mine, False, base, binary, model), n, frac, binary, model))
        unseen = sorted({r['subject'] for r in rows} - seen)
        if unseen:
            print(f'no fold of {cv} held out {unseen}: left out')
    else:
        hand = smoothed(classify(rows, True, base, binary, extra), n, frac, binary, extra)
        det = smoothed(classify(rows, False, base, binary, extra), n, frac, binary, extra)
    changed = lesion_changed = 0
    deltas, missing = [], []
    for key, h in hand.items():
        d = det.get(key)
        if d is None or not same_disc(h['corners'], d['corners']):
            missing.append(key)
            continue
        if d['label'] != h['label']:
            changed += 1
        if (h['probabilities']['normal'] <= 0.5) != (d['probabilities']['normal'] <= 0.5):
            lesion_changed += 1
        deltas.append(max(abs(h['probabilities'][k] - d['probabilities'][k]) for k in h['probabilities']))
    n = len(deltas)
    deltas.sort()
    print(f'{manifest}: {len(hand)} hand-placed discs; the detector found {n} at their level, '
          f'missed or misnamed {len(missing)}: {sorted(missing)}')
    print(f'predicted class changed on {changed} of {n} ({100 * changed / max(n, 1):.1f} %); '
          f'lesion call (P(lesion) >= 0.5) changed on {lesion_changed} ({100 * lesion_changed / max(n, 1):.1f} %)')
    print(f'largest probability change {deltas[-1]:.3f}, median {deltas[n // 2]:.3f}')


if __name__ == '__main__':
    main()
