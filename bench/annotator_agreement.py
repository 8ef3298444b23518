#!/usr/bin/env python3
"""How far apart do two careful annotators place the same corners, and where does the detector
stand between them?

The detector's corner target (median <= 1.5 mm, p90 <= 3 mm) is measured against our own hand
corners, which are themselves placed by eye. A second annotation of the same slices, made blind
(without seeing ours or the detector's), says how much of the detector's error is the truth's:
if two annotators already differ by about as much as the detector differs from one of them, the
figure measures the annotation, not the detector.

For every slice of SECOND (a corner manifest such as data/spider/corners-second.csv, the blind
second annotation of the detector's 30 validation and test slices; only image, level and
x1..y4 are read, image matched by file name), its discs are matched to ours in MANIFEST (default data/spider/manifest.csv) and
to the bundled detector's (`endplate detect --json`) by position (centres within half a disc
width), each disc's four corners paired by the assignment that minimises their total distance
(SPEC: corners come in any order). Reports, in mm (the manifest's spacing_mm) with a 95 %
bootstrap interval over patients:
  - ours vs second: the annotators' disagreement;
  - detector vs ours, detector vs second, and detector vs the mean of the two annotations;
  - levels: discs both annotators placed but named differently (a level-count disagreement);
  - with --classify, how often the bundled classifier (or --model) changes its class and its
    lesion call (P(lesion) >= 0.5) between the two annotations' corners, and between the
    detector's and each annotation's: the floor that the detector's "classes changed" target
    is measured against.
Only discs that both annotators placed (L1L2-L5S1) and the detector found are compared three
ways; counts are printed.

  python3 bench/annotator_agreement.py [SECOND.csv ...] [--manifest M.csv]
      [--detector D.onnx] [--classify] [--model M.onnx] [--bin target/debug/endplate]
      [--json OUT.json]
"""
import argparse, csv, itertools, json, os, random, subprocess, sys

LUMBAR = ['L1L2', 'L2L3', 'L3L4', 'L4L5', 'L5S1']


def corners_of(row):
    return [(float(row[f'x{i}']), float(row[f'y{i}'])) for i in range(1, 5)]


def centre(c):
    return (sum(p[0] for p in c) / 4, sum(p[1] for p in c) / 4)


def dist(p, q):
    return ((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2) ** 0.5


def width(c):
    """Mean length of the two endplates, whatever order the corners come in: of the three ways
    to pair four corners, the disc's heights are the shortest, its diagonals the longest and
    its endplates the one between."""
    pairings = [(0, 1, 2, 3), (0, 2, 1, 3), (0, 3, 1, 2)]
    return sorted((dist(c[a], c[b]) + dist(c[x], c[y])) / 2 for a, b, x, y in pairings)[1]


def paired_errors(a, b):
    """Per-corner distances under the assignment of b's corners to a's with the least total."""
    return min(([dist(a[i], b[p[i]]) for i in range(4)] for p in itertools.permutations(range(4))),
               key=sum)


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
    """`endplate classify --manifest --json` on every disc with the corners of `which`; the
    results in the order of `discs`."""
    import tempfile
    with tempfile.NamedTemporaryFile('w', suffix='.csv', delete=False) as f:
        w = csv.writer(f)
        w.writerow(['image', 'subject', 'level', 'label'] + [f'{a}{i}' for i in range(1, 5)
                                                              for a in 'xy'])
        for d in discs:
            w.writerow([os.path.abspath(d['image']), d['subject'], d['level'], '']
                       + [v for p in d[which] for v in p])
    cmd = [args.bin, 'classify', '--manifest', f.name, '--json']
    if args.model:
        cmd += ['--model', args.model]
    res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    os.unlink(f.name)
    by_key = {(os.path.abspath(r['image']), r['level']): r for r in res['results']}
    return [by_key[(os.path.abspath(d['image']), d['level'])] for d in discs]


def class_changes(discs, args):
    """Class and lesion-call changes between each two sets of corners, on the discs that have
    all three."""
    discs = [d for d in discs if d['detector'] is not None]
    res = {k: classify(discs, k, args) for k in ['ours', 'second', 'detector']}
    out = {}
    for a, b in [('ours', 'second'), ('detector', 'ours'), ('detector', 'second')]:
        cls = sum(x['label'] != y['label'] for x, y in zip(res[a], res[b]))
        les = sum((x['probabilities']['normal'] <= 0.5) != (y['probabilities']['normal'] <= 0.5)
                  for x, y in zip(res[a], res[b]))
        dp = sorted(max(abs(x['probabilities'][k] - y['probabilities'][k])
                        for k in x['probabilities']) for x, y in zip(res[a], res[b]))
        n = len(dp)
        out[f'{a}_vs_{b}'] = {'discs': n, 'class_changed': cls, 'lesion_call_changed': les,
                              'median_probability_change': quantile(dp, 0.5),
                              'largest_probability_change': dp[-1] if dp else float('nan')}
        print(f'{a + " vs " + b:20s} {n} discs: class changed {cls} ({100 * cls / max(n, 1):.1f} %), '
              f'lesion call changed {les} ({100 * les / max(n, 1):.1f} %), probability change '
              f'median {quantile(dp, 0.5):.3f}, largest {out[f"{a}_vs_{b}"]["largest_probability_change"]:.3f}')
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('second', nargs='*', default=['data/spider/corners-second.csv'])
    ap.add_argument('--manifest', default='data/spider/manifest.csv')
    ap.add_argument('--detector')
    ap.add_argument('--bin', default='target/debug/endplate')
    ap.add_argument('--json')
    ap.add_argument('--classify', action='store_true')
    ap.add_argument('--model')
    args = ap.parse_args()

    ours = {}
    for r in csv.DictReader(open(args.manifest)):
        ours.setdefault(os.path.basename(r['image']), []).append(r)
    second = {}
    for path in args.second:
        for r in csv.DictReader(open(path)):
            second.setdefault(os.path.basename(r['image'].strip()), []).append(r)

    errs = {k: {} for k in ['ours_vs_second', 'detector_vs_ours', 'detector_vs_second',
                            'detector_vs_mean']}
    level_disagree, unmatched, undetected, n_three = [], [], 0, 0
    discs = []
    for image in sorted(second):
        if image not in ours:
            sys.exit(f'{image}: in the second annotation but not in {args.manifest}; '
                     'annotate only slices the manifest has')
        base = ours[image]
        patient = base[0]['subject']
        spacing = float(base[0]['spacing_mm'])
        path = os.path.join(os.path.dirname(args.manifest), base[0]['image'])
        cmd = [args.bin, 'detect', '--image', path, '--json']
        if args.detector:
            cmd += ['--model', args.detector]
        det = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        found = [(d['level'], [tuple(p) for p in d['corners']]) for d in det['discs']]
        our_discs = [(r['level'], corners_of(r)) for r in base if r['x1']]
        for r in second[image]:
            if r['level'] not in LUMBAR or not r['x1']:
                continue
            c2 = corners_of(r)
            m = match(c2, our_discs)
            if m is None:
                unmatched.append(f'{image} {r["level"]}')
                continue
            discs.append({'image': path, 'subject': patient, 'level': m[0], 'ours': m[1],
                          'second': c2, 'detector': None})
            if m[0] != r['level']:
                level_disagree.append(f'{image}: ours {m[0]}, second {r["level"]}')
            c1 = m[1]
            e = [x * spacing for x in paired_errors(c1, c2)]
            errs['ours_vs_second'].setdefault(patient, []).extend(e)
            d = match(c1, found)
            if d is None:
                undetected += 1
                continue
            n_three += 1
            cd = d[1]
            discs[-1]['detector'] = cd
            errs['detector_vs_ours'].setdefault(patient, []).extend(
                x * spacing for x in paired_errors(c1, cd))
            errs['detector_vs_second'].setdefault(patient, []).extend(
                x * spacing for x in paired_errors(c2, cd))
            # The mean annotation: the second's corners put in our corners' order first.
            perm = min(itertools.permutations(range(4)),
                       key=lambda p: sum(dist(c1[i], c2[p[i]]) for i in range(4)))
            mean = [((c1[i][0] + c2[perm[i]][0]) / 2, (c1[i][1] + c2[perm[i]][1]) / 2)
                    for i in range(4)]
            errs['detector_vs_mean'].setdefault(patient, []).extend(
                x * spacing for x in paired_errors(mean, cd))

    out = {k: summary(v) for k, v in errs.items()}
    out['discs_both_annotated'] = sum(len(v) for v in errs['ours_vs_second'].values()) // 4
    out['discs_three_ways'] = n_three
    out['second_not_in_ours'] = unmatched
    out['not_found_by_detector'] = undetected
    out['level_disagreements'] = level_disagree
    out['patients'] = len(errs['ours_vs_second'])
    for k in ['ours_vs_second', 'detector_vs_ours', 'detector_vs_second', 'detector_vs_mean']:
        s = out[k]
        print(f'{k:20s} {s["corners"]:4d} corners  median {s["median_mm"]:.2f} mm '
              f'({s["median_ci"][0]:.2f}-{s["median_ci"][1]:.2f})  p90 {s["p90_mm"]:.2f} mm '
              f'({s["p90_ci"][0]:.2f}-{s["p90_ci"][1]:.2f})')
    print(f'{out["discs_both_annotated"]} discs annotated twice ({out["patients"]} patients), '
          f'{n_three} also found by the detector; {len(unmatched)} of the second annotation\'s '
          'discs have no disc of ours within half a width')
    for line in level_disagree:
        print('level disagreement:', line)
    if args.classify:
        out['classes'] = class_changes(discs, args)
    if args.json:
        tmp = args.json + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, args.json)


if __name__ == '__main__':
    main()
