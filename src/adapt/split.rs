//! Which discs adaptation holds out to check itself: whole subjects (one person's discs share a
//! scan and a reader, so a disc-level split would flatter the check), about a quarter of the
//! discs, chosen in an order fixed by the subjects' names, so the page and the CLI hold out
//! the same discs whatever order the discs come in. Every label used must appear among the
//! held-out discs, and the fit must keep [`MIN_FIT_PER_LABEL`] of each, or adaptation is refused.

use crate::class::Label;
use crate::error::{Error, Result};
use crate::model::adapt::MIN_FIT_PER_LABEL;
use std::collections::BTreeMap;

/// A stable 64-bit FNV-1a hash: the subjects' order, the same on every platform and run.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// `true` for each held-out disc. `subjects[i]` and `labels[i]` describe disc `i`.
pub fn held_out<S: AsRef<str>>(subjects: &[S], labels: &[Label]) -> Result<Vec<bool>> {
    let mut by_subject: BTreeMap<&str, [usize; Label::KEYS]> = BTreeMap::new();
    let mut total = [0usize; Label::KEYS];
    for (s, l) in subjects.iter().zip(labels) {
        by_subject.entry(s.as_ref()).or_default()[l.key()] += 1;
        total[l.key()] += 1;
    }
    if by_subject.len() < 2 {
        return Err(Error::Invalid(format!(
            "all {} labelled discs come from one subject: adaptation holds out whole subjects \
             to check itself, so label discs of more subjects (in the page, more slices)",
            labels.len()
        )));
    }
    let mut order: Vec<(&str, [usize; Label::KEYS])> = by_subject.into_iter().collect();
    order.sort_by_key(|(s, _)| (fnv1a(s), *s));
    let target = labels.len().div_ceil(4);
    // Per label: discs left to the fit; the subjects held out so far.
    let mut fit = total;
    let mut chosen: Vec<&str> = Vec::new();
    // Hold out subject `s` (label counts `c`) if the fit still keeps enough of each label.
    fn take<'a>(
        s: &'a str,
        c: &[usize; Label::KEYS],
        fit: &mut [usize; Label::KEYS],
        chosen: &mut Vec<&'a str>,
    ) -> bool {
        let keeps = (0..Label::KEYS).all(|k| c[k] == 0 || fit[k] >= c[k] + MIN_FIT_PER_LABEL);
        if keeps {
            for k in 0..Label::KEYS {
                fit[k] -= c[k];
            }
            chosen.push(s);
        }
        keeps
    }
    // A quarter of the discs, in the fixed order; then a subject for each label still missing.
    let mut n_held = 0;
    for (s, c) in &order {
        if n_held < target && take(s, c, &mut fit, &mut chosen) {
            n_held += c.iter().sum::<usize>();
        }
    }
    for k in 0..Label::KEYS {
        for (s, c) in &order {
            if total[k] > 0 && fit[k] == total[k] && c[k] > 0 && !chosen.contains(s) {
                take(s, c, &mut fit, &mut chosen);
            }
        }
    }
    if let Some(k) = (0..Label::KEYS).find(|&k| total[k] > 0 && fit[k] == total[k]) {
        let id = labels.iter().find(|l| l.key() == k).map_or("", |l| l.id());
        return Err(Error::Invalid(format!(
            "no `{id}` disc could be held out while the fit keeps {MIN_FIT_PER_LABEL} of each \
             label: adaptation checks itself on subjects it did not fit, so label `{id}` discs \
             on more subjects (in the page, more slices)"
        )));
    }
    Ok(subjects
        .iter()
        .map(|s| chosen.contains(&s.as_ref()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::Class;

    const N: Label = Label::Class(Class::Normal);
    const L: Label = Label::Lesion;

    #[test]
    fn whole_subjects_about_a_quarter_every_label_and_any_order() {
        // Ten subjects of five discs, two normal and three lesion each.
        let subjects: Vec<String> = (0..50).map(|i| format!("s{}", i / 5)).collect();
        let labels: Vec<Label> = (0..50).map(|i| if i % 5 < 2 { N } else { L }).collect();
        let held = held_out(&subjects, &labels).unwrap();
        let n = held.iter().filter(|&&h| h).count();
        assert!((13..=15).contains(&n), "{n} held out");
        for s in 0..10 {
            let h: Vec<bool> = (0..5).map(|i| held[s * 5 + i]).collect();
            assert!(h.iter().all(|&x| x == h[0]), "subject {s} split: {h:?}");
        }
        // Reversed input, same subjects held out.
        let (rs, rl): (Vec<String>, Vec<Label>) = subjects
            .iter()
            .cloned()
            .zip(labels.iter().copied())
            .rev()
            .unzip();
        let back: Vec<bool> = held_out(&rs, &rl).unwrap().into_iter().rev().collect();
        assert_eq!(back, held);
    }

    #[test]
    fn refuses_one_subject_and_a_label_on_one_subject() {
        let labels: Vec<Label> = (0..20).map(|i| if i < 10 { N } else { L }).collect();
        let e = held_out(&["a"; 20], &labels).unwrap_err().to_string();
        assert!(e.contains("one subject"), "{e}");
        // Every lesion on subject "a": holding it out would leave the fit none.
        let subjects: Vec<&str> = (0..20).map(|i| if i < 10 { "b" } else { "a" }).collect();
        let e = held_out(&subjects, &labels).unwrap_err().to_string();
        assert!(e.contains("no `") && e.contains("more subjects"), "{e}");
    }
}
