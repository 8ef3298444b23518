//! Train/validation splits: stratified by class (the paper's 80/20 keeping class proportions),
//! optionally keeping each subject on one side, and K folds for cross-validation.

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeMap;

/// Assign each item to one of `k` folds, stratified by class. With `groups`, whole groups
/// (subjects) move together, assigned greedily so each fold's class counts stay close.
pub fn stratified_folds(
    classes: &[usize],
    groups: Option<&[String]>,
    k: usize,
    seed: u64,
) -> Vec<usize> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let k = k.max(2);
    let mut fold = vec![0usize; classes.len()];
    match groups {
        None => {
            let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for (i, &c) in classes.iter().enumerate() {
                by_class.entry(c).or_default().push(i);
            }
            let mut offset = 0;
            for idx in by_class.values_mut() {
                idx.shuffle(&mut rng);
                for (j, &i) in idx.iter().enumerate() {
                    fold[i] = (j + offset) % k;
                }
                offset += idx.len();
            }
        }
        Some(groups) => {
            let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, g) in groups.iter().enumerate() {
                members.entry(g.as_str()).or_default().push(i);
            }
            let mut list: Vec<Vec<usize>> = members.into_values().collect();
            list.shuffle(&mut rng);
            // Rarest classes first, so they spread over the folds before the common ones fill.
            let mut totals = [0usize; 16];
            classes.iter().for_each(|&c| totals[c.min(15)] += 1);
            list.sort_by_key(|m| {
                m.iter()
                    .map(|&i| totals[classes[i].min(15)])
                    .min()
                    .unwrap_or(usize::MAX)
            });
            let mut counts = vec![[0usize; 16]; k];
            let mut sizes = vec![0usize; k];
            for m in list {
                // The fold where this subject's classes are scarcest relative to the fold size.
                let best = (0..k)
                    .min_by_key(|&f| {
                        (
                            m.iter()
                                .map(|&i| counts[f][classes[i].min(15)])
                                .sum::<usize>()
                                * 1000
                                + sizes[f],
                            f,
                        )
                    })
                    .unwrap_or(0);
                for &i in &m {
                    fold[i] = best;
                    counts[best][classes[i].min(15)] += 1;
                }
                sizes[best] += m.len();
            }
        }
    }
    fold
}

/// Training and held-out indices when fold `held_out` of `k` is held out: one round of K-fold
/// cross-validation.
pub fn fold_split(
    classes: &[usize],
    groups: Option<&[String]>,
    k: usize,
    held_out: usize,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let folds = stratified_folds(classes, groups, k, seed);
    let (val, train): (Vec<usize>, Vec<usize>) =
        (0..classes.len()).partition(|&i| folds[i] == held_out);
    (train, val)
}

/// `split` applied to each source's items on its own, the indices mapped back (each side in
/// ascending order). A data set's folds then do not depend on which other data sets share the
/// run: real discs trained next to phantoms hold out the same patients in fold K as real discs
/// alone, so two recipes can be paired disc by disc, or one continue from the other's fold
/// models without a held-out patient ever having been learnt. One source splits as before.
///
/// With `groups`, a group that an earlier source already placed follows it to the same side,
/// and only the source's other groups are split: more discs of the same patients in a second
/// manifest never put a patient on both sides, and leave the first manifest's split as it was.
pub fn per_source(
    strata: &[usize],
    groups: Option<&[String]>,
    sources: &[usize],
    split: impl Fn(&[usize], Option<&[String]>) -> (Vec<usize>, Vec<usize>),
) -> (Vec<usize>, Vec<usize>) {
    let (mut train, mut val) = (Vec::new(), Vec::new());
    // Groups placed so far: true when held out.
    let mut placed: BTreeMap<&str, bool> = BTreeMap::new();
    for s in sources
        .iter()
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
    {
        let mut idx: Vec<usize> = Vec::new();
        for i in (0..strata.len()).filter(|&i| sources[i] == s) {
            match groups.and_then(|g| placed.get(g[i].as_str())) {
                Some(true) => val.push(i),
                Some(false) => train.push(i),
                None => idx.push(i),
            }
        }
        let own: Vec<usize> = idx.iter().map(|&i| strata[i]).collect();
        let own_groups: Option<Vec<String>> =
            groups.map(|g| idx.iter().map(|&i| g[i].clone()).collect());
        let (t, v) = split(&own, own_groups.as_deref());
        let (t, v): (Vec<usize>, Vec<usize>) = (
            t.into_iter().map(|j| idx[j]).collect(),
            v.into_iter().map(|j| idx[j]).collect(),
        );
        if let Some(g) = groups {
            placed.extend(t.iter().map(|&i| (g[i].as_str(), false)));
            placed.extend(v.iter().map(|&i| (g[i].as_str(), true)));
        }
        train.extend(t);
        val.extend(v);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// The paper's split: 80 % training, 20 % validation (fold 0 of 5 is validation).
pub fn train_validation(
    classes: &[usize],
    groups: Option<&[String]>,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    fold_split(classes, groups, 5, 0, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_80_20_keeps_class_proportions() {
        let classes: Vec<usize> = [567, 485, 362, 145]
            .iter()
            .enumerate()
            .flat_map(|(c, &n)| std::iter::repeat_n(c, n))
            .collect();
        let (train, val) = train_validation(&classes, None, 1);
        assert_eq!(train.len() + val.len(), 1559);
        assert!((val.len() as i64 - 312).abs() <= 2, "{}", val.len());
        for (c, &n) in [567, 485, 362, 145].iter().enumerate() {
            let v = val.iter().filter(|&&i| classes[i] == c).count() as f64;
            assert!((v - n as f64 / 5.0).abs() <= 1.0, "class {c}: {v}");
        }
    }

    #[test]
    fn split_by_subject_never_shares_a_subject() {
        let classes: Vec<usize> = (0..500).map(|i| (i * 7 / 3) % 4).collect();
        let groups: Vec<String> = (0..500).map(|i| format!("s{}", i / 5)).collect();
        let (train, val) = train_validation(&classes, Some(&groups), 2);
        let tr: std::collections::HashSet<&String> = train.iter().map(|&i| &groups[i]).collect();
        assert!(val.iter().all(|&i| !tr.contains(&groups[i])));
        assert!(
            (val.len() as f64 / 500.0 - 0.2).abs() < 0.05,
            "{}",
            val.len()
        );
    }

    #[test]
    fn a_patient_in_two_sources_stays_on_the_side_the_first_gave_them() {
        // 60 lumbar discs of 20 patients, then 30 thoracic discs of 15 of them and 6 of 3
        // patients the first source does not have.
        let mut classes: Vec<usize> = (0..60).map(|i| (i / 3) % 2).collect();
        let mut groups: Vec<String> = (0..60).map(|i| format!("r{}", i / 3)).collect();
        let mut sources = vec![0usize; 60];
        for i in 0..36 {
            classes.push(2 + i % 2);
            groups.push(format!("r{}", 5 + i / 2));
            sources.push(1);
        }
        for f in 0..5 {
            let split = |c: &[usize], g: Option<&[String]>| fold_split(c, g, 5, f, 7);
            let (train, val) = per_source(&classes, Some(&groups), &sources, split);
            assert_eq!(train.len() + val.len(), 96);
            let held: std::collections::HashSet<&String> =
                val.iter().map(|&i| &groups[i]).collect();
            assert!(
                train.iter().all(|&i| !held.contains(&groups[i])),
                "fold {f}: a patient on both sides"
            );
            // The first source's split is the one it has alone.
            let alone = split(&classes[..60], Some(&groups[..60]));
            let first = |v: &[usize]| v.iter().copied().filter(|&i| i < 60).collect::<Vec<_>>();
            assert_eq!((first(&train), first(&val)), alone, "fold {f}");
        }
        // Without groups nothing follows anything: each source split on its own.
        let (train, val) = per_source(&classes, None, &sources, |c, g| fold_split(c, g, 5, 0, 7));
        assert_eq!(train.len() + val.len(), 96);
    }

    #[test]
    fn a_source_holds_out_the_same_subjects_whatever_else_shares_the_run() {
        // 60 "real" items of 20 subjects alone, then with 90 "phantom" items of 30 subjects
        // in front of them (source 1 then comes second in the arrays).
        let real_classes: Vec<usize> = (0..60).map(|i| (i / 3) % 2).collect();
        let real_groups: Vec<String> = (0..60).map(|i| format!("r{}", i / 3)).collect();
        let alone = per_source(&real_classes, Some(&real_groups), &[0; 60], |c, g| {
            fold_split(c, g, 5, 2, 7)
        });
        let mut classes: Vec<usize> = (0..90).map(|i| 10 + (i / 3) % 4).collect();
        let mut groups: Vec<String> = (0..90).map(|i| format!("p{}", i / 3)).collect();
        let mut sources = vec![0usize; 90];
        classes.extend(&real_classes);
        groups.extend(real_groups.iter().cloned());
        sources.extend([1; 60]);
        let (train, val) = per_source(&classes, Some(&groups), &sources, |c, g| {
            fold_split(c, g, 5, 2, 7)
        });
        let real = |v: &[usize]| -> Vec<usize> {
            v.iter().filter(|&&i| i >= 90).map(|&i| i - 90).collect()
        };
        assert_eq!(real(&val), alone.1);
        assert_eq!(real(&train), alone.0);
        // Both sources are split: phantom subjects on both sides, never on both at once.
        assert!(val.iter().any(|&i| i < 90) && train.iter().any(|&i| i < 90));
        assert_eq!(train.len() + val.len(), 150);
        let held: std::collections::HashSet<&String> = val.iter().map(|&i| &groups[i]).collect();
        assert!(train.iter().all(|&i| !held.contains(&groups[i])));
        // One source: exactly the plain split.
        assert_eq!(
            alone,
            fold_split(&real_classes, Some(&real_groups), 5, 2, 7)
        );
    }

    #[test]
    fn k_folds_hold_out_every_disc_exactly_once() {
        let classes: Vec<usize> = (0..203).map(|i| (i * 5 / 3) % 4).collect();
        let mut held = vec![0usize; classes.len()];
        for f in 0..4 {
            let (train, val) = fold_split(&classes, None, 4, f, 7);
            assert_eq!(train.len() + val.len(), 203);
            assert!(
                (val.len() as i64 - 51).abs() <= 2,
                "fold {f}: {}",
                val.len()
            );
            val.iter().for_each(|&i| held[i] += 1);
        }
        assert!(held.iter().all(|&n| n == 1));
    }
}
