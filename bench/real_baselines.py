#!/usr/bin/env python3
"""The reference figures an image model must beat on real SPIDER discs, under patient-level
5-fold cross-validation (the same unit as every other real figure in the README):

1. SPIDER's *other* gradings of the same disc (Pfirrmann grade, Modic type, narrowing,
   herniation, bulging, spondylolisthesis, level) -> P(endplate lesion): how much of the label
   the rest of a radiologist's report already carries. Uses every graded TSE disc of the data set
   (no corners needed) and, for comparison, the discs of our manifest.
2. The ROI's raw pixels (32x32, from `examples/real_features.rs`) -> P(lesion).
3. Optionally, models' frozen pooled features (512, `examples/real_features.rs` with a MODEL):
   for the phantom-only model or the rotation pretext's backbone, how much of real endplates
   the backbone has learnt without a lesion label.

L2-regularised logistic regression (Newton steps), features standardised on the training folds,
the L2 strength chosen by an inner 4-fold patient CV on the training folds only. Reported: AUC
of the pooled out-of-fold predictions with a 95 % bootstrap interval over patients (500 draws,
seed 1), and the mean +- sd of the per-fold AUCs. Label noise: SPIDER graded the whole volume,
the slice is its middle.

  bench/real_experiments.sh baselines   (or by hand:)
  target/debug/examples/real_features data/spider/manifest.csv target/real_features.csv
  python3 bench/real_baselines.py data/spider/manifest.csv target/real_features.csv [FROZEN.csv ...]
  python3 bench/real_baselines.py --pixels-only target/real_features.csv   (item 2 alone)
"""
import csv, json, os, sys
import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../shared/data/spider-t2')
ORDER = ['L1L2', 'L2L3', 'L3L4', 'L4L5', 'L5S1']


def held_out(fold):
    """The patients a `train --folds` report's fold folder held out, as the manifest names them
    (its predictions.csv prefixes each with the manifest's path)."""
    with open(f"{fold}/predictions.csv") as f:
        return {r["subject"].split(":")[-1] for r in csv.DictReader(f)}


def from_cv(reports, manifest=None):
    """The real (SPIDER) discs' out-of-fold P(lesion) of each report, disc by disc. A fold's
    predictions list each patient's discs in manifest order, so a disc is (its manifest's file
    name, patient, its place among the patient's discs there): reports of other seeds, whose
    folds differ, pair too. Only the discs every report has held out are kept (a run still
    going has fewer folds; a run with more manifests, e.g. thoracic.csv, pairs on the
    manifests the others have). `manifest` (a file name) keeps that manifest's discs only."""
    per = []
    for d in reports:
        seen, got = {}, {}
        for f in range(1, 100):
            try:
                rows = list(csv.DictReader(open(f"{d}/fold-{f}/predictions.csv")))
            except FileNotFoundError:
                break
            for r in rows:
                if "spider" not in r["subject"]:
                    continue
                source, _, s = r["subject"].rpartition(":")
                s = (source.split("/")[-1], s)
                if manifest and s[0] != manifest:
                    continue
                k = seen.get(s, 0)
                seen[s] = k + 1
                got[(*s, k)] = (int(r["label"] == "lesion"), 1 - float(r["normal"]))
        per.append(got)
    out = []
    for key in per[0]:
        if all(key in g for g in per[1:]):
            assert len({g[key][0] for g in per}) == 1, f"{key}: reports differ in labels"
            row = {"subject": key[1], "lesion": per[0][key][0]}
            for d, g in zip(reports, per):
                row[d.rstrip("/").split("/")[-1]] = g[key][1]
            out.append(row)
    return out


def auc(score, y):
    order = np.argsort(score, kind='mergesort')
    s = score[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    npos = y.sum()
    nneg = len(y) - npos
    if npos == 0 or nneg == 0:
        return float('nan')
    return (ranks[y == 1].sum() - npos * (npos + 1) / 2) / (npos * nneg)


def fit(x, y, lam):
    """L2 logistic regression by Newton steps; intercept unpenalised."""
    n, d = x.shape
    X = np.hstack([np.ones((n, 1)), x])
    w = np.zeros(d + 1)
    pen = np.full(d + 1, lam)
    pen[0] = 0.0
    for _ in range(30):
        p = 1 / (1 + np.exp(-X @ w))
        g = X.T @ (p - y) + pen * w
        H = (X * (p * (1 - p))[:, None]).T @ X + np.diag(pen) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


def predict(w, x):
    return 1 / (1 + np.exp(-(w[0] + x @ w[1:])))


def patient_folds(patients, k, seed):
    uniq = sorted(set(patients))
    rng = np.random.default_rng(seed)
    rng.shuffle(uniq)
    f = {p: i % k for i, p in enumerate(uniq)}
    return np.array([f[p] for p in patients])


def standardise(tr, te):
    m, s = tr.mean(0), tr.std(0) + 1e-6
    return (tr - m) / s, (te - m) / s


def cv_predict(x, y, patients, lams, k=5, seed=1):
    folds = patient_folds(patients, k, seed)
    out = np.zeros(len(y))
    per_fold, chosen = [], []
    for f in range(k):
        tr, te = folds != f, folds == f
        # Inner patient CV on the training folds picks the L2 strength.
        inner = patient_folds([p for p, t in zip(patients, tr) if t], 4, seed + 1 + f)
        xtr, ytr = x[tr], y[tr]
        best, best_auc = lams[0], -1
        for lam in lams:
            pi = np.zeros(len(ytr))
            for g in range(4):
                a, b = standardise(xtr[inner != g], xtr[inner == g])
                pi[inner == g] = predict(fit(a, ytr[inner != g], lam), b)
            a_ = auc(pi, ytr)
            if a_ > best_auc:
                best, best_auc = lam, a_
        a, b = standardise(xtr, x[te])
        out[te] = predict(fit(a, ytr, best), b)
        per_fold.append(auc(out[te], y[te]))
        chosen.append(best)
    return out, per_fold, chosen


def bootstrap(score, y, patients, n=500, seed=1):
    groups = {}
    for i, p in enumerate(patients):
        groups.setdefault(p, []).append(i)
    keys = sorted(groups)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        idx = np.concatenate([groups[keys[j]] for j in rng.integers(0, len(keys), len(keys))])
        a = auc(score[idx], y[idx])
        if np.isfinite(a):
            vals.append(a)
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def report(name, score, y, patients, per_fold, chosen):
    lo, hi = bootstrap(score, y, patients)
    r = {'baseline': name, 'discs': int(len(y)), 'lesions': int(y.sum()),
         'patients': len(set(patients)), 'auc_pooled': auc(score, y), 'auc_lo': lo, 'auc_hi': hi,
         'auc_folds_mean': float(np.mean(per_fold)), 'auc_folds_sd': float(np.std(per_fold, ddof=1)),
         'l2_chosen': chosen}
    print(f"{name:<48} n={r['discs']:4d} ({r['patients']} patients)  AUC {r['auc_pooled']:.3f} "
          f"({lo:.3f}-{hi:.3f})  folds {r['auc_folds_mean']:.3f} +- {r['auc_folds_sd']:.3f}")
    return r


def gradings():
    tse = {r['patient'] for r in csv.DictReader(open(f'{DATA}/slices.csv')) if r['series'] == 't2'}
    rows = []
    for r in csv.DictReader(open(f'{DATA}/radiological_gradings.csv')):
        k = int(r['IVD label'])
        if 1 <= k <= 5 and r['Patient'] in tse:
            rows.append(r)
    return rows


def grading_features(r):
    k = int(r['IVD label'])
    f = [float(r['Pfirrman grade'])]
    f += [float(r['Modic'] == str(m)) for m in (1, 2, 3)]
    f += [float(r[c]) for c in ('Disc narrowing', 'Disc herniation', 'Disc bulging', 'Spondylolisthesis')]
    f += [float(k == j) for j in (1, 2, 3, 4)]  # level, L1L2 as reference
    return f


def read_features(path):
    """`examples/real_features` CSV: subject, level, lesion, then one column per feature."""
    rows = list(csv.reader(open(path)))[1:]
    return (np.array([[float(v) for v in r[3:]] for r in rows]), np.array([float(r[2]) for r in rows]),
            [r[0] for r in rows])


def main():
    if sys.argv[1] == '--pixels-only':
        xp, yp, pp = read_features(sys.argv[2])
        s, pf, ch = cv_predict(xp, yp, pp, [10, 100, 1000, 10000])
        report(f'raw ROI pixels 32x32, {sys.argv[2]}', s, yp, pp, pf, ch)
        return
    manifest, features = sys.argv[1], sys.argv[2]
    results = []
    g = gradings()
    x = np.array([grading_features(r) for r in g])
    y = np.array([float(r['UP endplate'] == '1' or r['LOW endplate'] == '1') for r in g])
    pats = [r['Patient'] for r in g]
    lams = [0.01, 0.1, 1, 10, 100]
    s, pf, ch = cv_predict(x, y, pats, lams)
    results.append(report('SPIDER gradings, all graded TSE discs', s, y, pats, pf, ch))

    m = [r for r in csv.DictReader(open(manifest)) if r['label'] in ('normal', 'lesion')]
    key = {(r['Patient'], ORDER[5 - int(r['IVD label'])]): r for r in g}
    sel = [key[(r['subject'].split('_')[1], r['level'])] for r in m
           if (r['subject'].split('_')[1], r['level']) in key and r['series'] == 'TSE']
    x2 = np.array([grading_features(r) for r in sel])
    y2 = np.array([float(r['UP endplate'] == '1' or r['LOW endplate'] == '1') for r in sel])
    p2 = [r['Patient'] for r in sel]
    s, pf, ch = cv_predict(x2, y2, p2, lams)
    results.append(report('SPIDER gradings, TSE discs of our manifest', s, y2, p2, pf, ch))

    xp, yp, pp = read_features(features)
    s, pf, ch = cv_predict(xp, yp, pp, [10, 100, 1000, 10000])
    results.append(report('raw ROI pixels 32x32, every disc of our manifest', s, yp, pp, pf, ch))
    for frozen in sys.argv[3:]:
        xf, yf, pf_ = read_features(frozen)
        s, pf, ch = cv_predict(xf, yf, pf_, [1, 10, 100, 1000, 10000])
        results.append(report(f'frozen pooled features ({xf.shape[1]}), {os.path.basename(frozen)}',
                              s, yf, pf_, pf, ch))
    out = os.environ.get('OUT')
    if out:
        json.dump(results, open(out, 'w'), indent=1)


if __name__ == '__main__':
    main()
