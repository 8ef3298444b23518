#!/usr/bin/env python3
"""How far apart do careful annotators place the same corners, and where does the detector
stand among them?

The detector's corner target (median <= 1.5 mm, p90 <= 3 mm) is measured against our own hand
corners, which are themselves placed by eye. Further annotations of the same slices, made blind
(without seeing ours, each other's or the detector's), say how much of the detector's error is
the truth's: if two annotators already differ by about as much as the detector differs from
either, the figure measures the annotation, not the detector.

Our corners (--manifest, default data/spider/manifest.csv) are the first annotation; each
ANNOTATION file (default data/spider/corners-second.csv and, where present,
data/spider/corners-third.csv: blind annotations of the detector's 30 validation and test
slices) is one more. Only image (matched by file name), level and x1..y4 are read. On the
slices that every annotation covers, a disc of ours is compared when every other annotation and
the bundled detector (`endplate detect --json`, or --detector) have a disc whose centre lies
within half its width; each disc's corners are paired by the assignment with the least total
distance (SPEC: corners come in any order). Reports, in mm (the manifest's spacing_mm), with a
95 % bootstrap interval over patients:
  - every pair of annotations, and the detector against each annotation;
  - with three or more annotations, each annotation against the mean of the others, and the
    detector against the mean of every equally large group of annotations: the fair
    comparison of a model with one more reader;
  - levels: discs matched by position but named differently (a level-count disagreement);
  - with --consensus OUT.csv, a corner manifest of the discs every annotation placed: their
    corners' mean and the level most annotations give (data/spider/corners-consensus.csv was
    written so, for `endplate evaluate-detector`);
  - with --classify, how often the bundled classifier (or --model) changes its class and its
    lesion call (P(lesion) >= 0.5) between any two sets of corners: the floor that the
    detector's "classes changed" target is measured against.

  python3 bench/annotator_agreement.py [ANNOTATION.csv ...] [--manifest M.csv]
      [--detector D.onnx] [--classify] [--model M.onnx] [--bin target/debug/endplate]
      [--consensus OUT.csv] [--json OUT.json]
"""
import argparse, csv, itertools, json, os, random, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import detected_vs_hand as dvh  # noqa: E402  (its classify and disc centre)

centre = dvh.centre

LUMBAR = ['L1L2', 'L2L3', 'L3L4', 'L4L5', 'L5S1']


def corners_of(row):
    return [(float(row[f'x{i}']), float(row[f'y{i}'])) for i in range(1, 5)]


def dist(p, q):
    return ((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2) ** 0.5


def width(c):
    """Mean length of the two endplates, whatever order the corners come in: of the three ways
    to pair four corners, the disc's heights are the shortest, its diagonals the longest and
    its endplates the one between."""
    pairings = [(0, 1, 2, 3), (0, 2, 1, 3), (0, 3, 1, 2)]
    return sorted((dist(c[a], c[b]) + dist(c[x], c[y])) / 2 for a, b, x, y in pairings)[1]


def in_order_of(a, b):
    """b's corners reordered to pair with a's, by the assignment with the least total distance."""
    perm = min(itertools.permutations(range(4)), key=lambda p: sum(dist(a[i], b[p[i]]) for i in range(4)))
    return [b[perm[i]] for i in range(4)]


def errors(a, b):
    return [dist(p, q) for p, q in zip(a, in_order_of(a, b))]


def mean_of(cs):
    """Corner-wise mean of corner sets already in one order."""
    return [(sum(c[i][0] for c in cs) / len(cs), sum(c[i][1] for c in cs) / len(cs)) for i in range(4)]


def match(disc, others):
    """The disc of `others` (list of (level, corners)) whose centre is nearest, if within half a
    disc width."""
    c, w = centre(disc), width(disc)
    best = min(others, key=lambda o: dist(centre(o[1]), c), default=None)
    if best is None or dist(centre(best[1]), c) > 0.5 * w:
        return None
    return best


def quantile(xs, q):
    xs = sorted(xs)
    if not xs:
        return float('nan')
    k = q * (len(xs) - 1)
    lo = int(k)
    return xs[lo] + (xs[min(lo + 1, len(xs) - 1)] - xs[lo]) * (k - lo)


def summary(errs_by_patient, reps=1000, seed=1):
    """Median and p90 of all corner errors, with bootstrap intervals over patients."""
    allv = [e for es in errs_by_patient.values() for e in es]
    pats = list(errs_by_patient)
    rng = random.Random(seed)
    meds, p90s = [], []
    for _ in range(reps):
        draw = [e for _ in pats for e in errs_by_patient[rng.choice(pats)]]
        meds.append(quantile(draw, 0.5))
        p90s.append(quantile(draw, 0.9))
    return {
        'corners': len(allv),
        'median_mm': quantile(allv, 0.5),
        'median_ci': [quantile(meds, 0.025), quantile(meds, 0.975)],
        'p90_mm': quantile(allv, 0.9),
        'p90_ci': [quantile(p90s, 0.025), quantile(p90s, 0.975)],
    }


def classify(discs, which, args):
    """The bundled classifier (or --model) on every disc with the corners of `which` (an
    annotation's index, or 'detector'), through detected_vs_hand's `classify`; the results in
    the order of `discs`."""
    rows = [{'image': os.path.abspath(d['image']), 'subject': d['subject'], 'level': d['level'],
             **{f'{a}{i + 1}': v for i, p in enumerate(d['corners'][which]) for a, v in zip('xy', p)}}
            for d in discs]
    res = dvh.classify(rows, True, '', args.bin, ['--model', args.model] if args.model else [])
    return [res[(os.path.basename(d['image']), d['level'])] for d in discs]


def class_changes(discs, sources, names, args):
    """Class and lesion-call changes between each two sets of corners."""
    res = {s: classify(discs, s, args) for s in sources}
    out = {}
    for a, b in itertools.combinations(sources, 2):
        cls = sum(x['label'] != y['label'] for x, y in zip(res[a], res[b]))
        les = sum((x['probabilities']['normal'] <= 0.5) != (y['probabilities']['normal'] <= 0.5)
                  for x, y in zip(res[a], res[b]))
        dp = sorted(max(abs(x['probabilities'][k] - y['probabilities'][k]) for k in x['probabilities'])
                    for x, y in zip(res[a], res[b]))
        n = len(dp)
        key = f'{names[a]} vs {names[b]}'
        out[key] = {'discs': n, 'class_changed': cls, 'lesion_call_changed': les,
                    'median_probability_change': quantile(dp, 0.5),
                    'largest_probability_change': dp[-1] if dp else float('nan')}
        print(f'{key:24s} {n} discs: class changed {cls} ({100 * cls / max(n, 1):.1f} %), lesion call '
              f'changed {les} ({100 * les / max(n, 1):.1f} %), probability change median '
              f'{quantile(dp, 0.5):.3f}, largest {out[key]["largest_probability_change"]:.3f}')
    return out


def write_consensus(path, discs, n_ann):
    """A corner manifest of every disc that all annotations placed: the corner-wise mean of the
    annotations, the level most of them give it, the slice's spacing; written atomically."""
    order = {l: k for k, l in enumerate(LUMBAR)}
    discs = sorted(discs, key=lambda d: (d['row']['image'], order[d['majority']]))
    tmp = path + '.tmp'
    with open(tmp, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['image', 'subject', 'level', 'label'] + [f'{a}{i}' for i in range(1, 5) for a in 'xy']
                   + ['spacing_mm', 'annotations'])
        for d in discs:
            mean = mean_of([d['corners'][i] for i in range(n_ann)])
            w.writerow([d['row']['image'], d['subject'], d['majority'], '']
                       + [f'{v:.2f}' for p in mean for v in p] + [d['row']['spacing_mm'], n_ann])
    os.replace(tmp, path)
    print(f'{path}: {len(discs)} discs, the mean of {n_ann} annotations each')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('annotations', nargs='*')
    ap.add_argument('--manifest', default='data/spider/manifest.csv')
    ap.add_argument('--detector')
    ap.add_argument('--bin', default='target/debug/endplate')
    ap.add_argument('--json')
    ap.add_argument('--classify', action='store_true')
    ap.add_argument('--model')
    ap.add_argument('--consensus')
    args = ap.parse_args()
    files = args.annotations or [f for f in ['data/spider/corners-second.csv', 'data/spider/corners-third.csv']
                                 if os.path.exists(f)]

    def read(path):
        by_image = {}
        for r in csv.DictReader(open(path)):
            by_image.setdefault(os.path.basename(r['image'].strip()), []).append(r)
        return by_image

    ours = read(args.manifest)
    others = [read(p) for p in files]
    names = ['ours'] + [os.path.splitext(os.path.basename(p))[0].replace('corners-', '') for p in files]
    n_ann = len(names)
    images = sorted(set.intersection(*(set(o) for o in others)))
    for image in images:
        if image not in ours:
            sys.exit(f'{image}: annotated but not in {args.manifest}; annotate only slices the manifest has')

    discs, undetected, level_disagree, skipped = [], [], [], 0
    for image in images:
        base = ours[image]
        path = os.path.join(os.path.dirname(args.manifest), base[0]['image'])
        cmd = [args.bin, 'detect', '--image', path, '--json']
        if args.detector:
            cmd += ['--model', args.detector]
        det = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        found = [(d['level'], [tuple(p) for p in d['corners']]) for d in det['discs']]
        sets = [[(r['level'], corners_of(r)) for r in o[image] if r['level'] in LUMBAR and r['x1']]
                for o in others]
        for r in base:
            if r['level'] not in LUMBAR or not r['x1']:
                continue
            c0 = corners_of(r)
            matches = [match(c0, s) for s in sets]
            if any(m is None for m in matches):
                skipped += 1
                continue
            for k, m in enumerate(matches):
                if m[0] != r['level']:
                    level_disagree.append(f'{image}: ours {r["level"]}, {names[k + 1]} {m[0]}')
            corners = {0: c0}
            for k, m in enumerate(matches):
                corners[k + 1] = in_order_of(c0, m[1])
            # The level most annotations give this disc (ours where they tie).
            levels = [r['level']] + [m[0] for m in matches]
            level = max(levels, key=lambda l: (levels.count(l), l == r['level']))
            d = match(c0, found)
            if d is not None:
                corners['detector'] = in_order_of(c0, d[1])
            disc = {'image': path, 'subject': r['subject'], 'level': r['level'], 'majority': level,
                    'row': r, 'spacing': float(r['spacing_mm']), 'corners': corners}
            (discs if d is not None else undetected).append(disc)

    def pooled(pairs):
        """Corner errors in mm by patient, over discs and over (a, b) pairs of corner sets,
        where a set is an annotation index, 'detector', or a tuple of indices (their mean)."""
        by_patient = {}
        for d in discs:
            get = lambda s: mean_of([d['corners'][i] for i in s]) if isinstance(s, tuple) else d['corners'][s]
            for a, b in pairs:
                by_patient.setdefault(d['subject'], []).extend(
                    e * d['spacing'] for e in errors(get(a), get(b)))
        return by_patient

    out = {'annotations': names, 'discs': len(discs), 'patients': len({d['subject'] for d in discs}),
           'slices': len(images), 'discs_of_ours_not_placed_by_all': skipped,
           'discs_placed_by_all_not_found_by_detector': len(undetected),
           'level_disagreements': level_disagree, 'corners': {}}

    def report(key, pairs):
        s = summary(pooled(pairs))
        out['corners'][key] = s
        print(f'{key:44s} {s["corners"]:5d} corners  median {s["median_mm"]:.2f} mm '
              f'({s["median_ci"][0]:.2f}-{s["median_ci"][1]:.2f})  p90 {s["p90_mm"]:.2f} mm '
              f'({s["p90_ci"][0]:.2f}-{s["p90_ci"][1]:.2f})')

    for a, b in itertools.combinations(range(n_ann), 2):
        report(f'{names[a]} vs {names[b]}', [(a, b)])
    for a in range(n_ann):
        report(f'detector vs {names[a]}', [('detector', a)])
    if n_ann >= 3:
        group = n_ann - 1
        report(f'each annotation vs the mean of the other {group}',
               [(a, tuple(i for i in range(n_ann) if i != a)) for a in range(n_ann)])
        report(f'detector vs the mean of any {group} annotations',
               [('detector', g) for g in itertools.combinations(range(n_ann), group)])
        report(f'detector vs the mean of all {n_ann}', [('detector', tuple(range(n_ann)))])
    elif n_ann == 2:
        report('detector vs the mean of both', [('detector', (0, 1))])
    print(f'{len(discs)} discs of ours placed by every annotation and found by the detector '
          f'({out["patients"]} patients, {len(images)} slices); {len(undetected)} placed by every '
          f'annotation but not found; {skipped} not placed by every annotation')
    for line in level_disagree:
        print('level disagreement:', line)
    if args.consensus:
        write_consensus(args.consensus, discs + undetected, n_ann)
    if args.classify:
        sources = list(range(n_ann)) + ['detector']
        out['classes'] = class_changes(discs, sources, {**dict(enumerate(names)), 'detector': 'detector'}, args)
    if args.json:
        tmp = args.json + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, args.json)


if __name__ == '__main__':
    main()
