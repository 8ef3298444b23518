//! The slices a detector learns and is checked on: phantoms drawn for the purpose (with their
//! thoracic discs too, so the network learns that every disc is a disc) and manifests of real
//! slices with corners and levels.

use super::detector_views::{DetSample, TruthDisc};
use crate::error::Result;
use crate::eval::detection::{read_truth, SliceTruth};
use crate::image::slice::Slice;
use crate::model::detector::DetectorInput;
use crate::phantom::{plan_subject, render, ClassMix, Phantom};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::Path;

/// `n` phantom subjects of data set `seed` rendered on `threads` threads (half 8-bit, half
/// 16-bit), each turned into whatever `keep` makes of it.
fn render_phantoms<T: Send>(
    n: usize,
    seed: u64,
    threads: usize,
    keep: impl Fn(Phantom) -> T + Sync,
) -> Vec<T> {
    let per = n.div_ceil(threads.max(1)).max(1);
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let keep = &keep;
    std::thread::scope(|scope| {
        for (t, chunk) in out.chunks_mut(per).enumerate() {
            scope.spawn(move || {
                for (k, slot) in chunk.iter_mut().enumerate() {
                    let i = t * per + k;
                    let bits = if i % 2 == 0 { 8 } else { 16 };
                    *slot = Some(keep(render(&plan_subject(seed, i, ClassMix::Paper, bits))));
                }
            });
        }
    });
    out.into_iter()
        .map(|s| s.expect("every subject rendered"))
        .collect()
}

fn truth_of(ph: &Phantom) -> SliceTruth {
    SliceTruth {
        image: ph.plan.id.clone(),
        subject: ph.plan.id.clone(),
        spacing_mm: Some(ph.plan.spacing_mm),
        discs: ph.discs.iter().map(|d| (d.level, d.corners)).collect(),
    }
}

/// Training samples from `n` phantoms of data set `seed`: every disc above the sacrum is marked.
pub fn phantom_samples(
    n: usize,
    seed: u64,
    input: &DetectorInput,
    threads: usize,
) -> Vec<DetSample> {
    render_phantoms(n, seed, threads, |ph| {
        let discs = ph
            .spine_discs
            .iter()
            .map(|(from_sacrum, corners)| TruthDisc {
                corners: *corners,
                from_sacrum: *from_sacrum,
            })
            .collect();
        DetSample::new(&ph.slice, input, discs, false)
    })
}

/// Validation slices from `n` phantoms: the lumbar truth and the slice itself.
pub fn phantom_slices(n: usize, seed: u64, threads: usize) -> Vec<(SliceTruth, Slice)> {
    render_phantoms(n, seed, threads, |ph| (truth_of(&ph), ph.slice))
}

/// Training samples from a manifest of real slices with levels and corners, one per image;
/// the manifest and its images go into `hasher`. Only L1L2–L5S1 are marked on such slices, so
/// their samples are flagged as partial truth. Slices of the subjects in `held_out` are left
/// out (and counted), so a patient used to choose or judge the detector is never learnt from,
/// whatever the manifests given.
pub fn manifest_samples(
    manifest: &Path,
    input: &DetectorInput,
    hasher: &mut Sha256,
    held_out: &HashSet<String>,
) -> Result<(Vec<DetSample>, usize)> {
    let slices = read_truth(manifest, |b| hasher.update(b))?;
    let given = slices.len();
    let samples: Vec<DetSample> = slices
        .into_iter()
        .filter(|(truth, _)| !held_out.contains(&truth.subject))
        .map(|(truth, slice)| {
            let discs = truth
                .discs
                .iter()
                .map(|(l, c)| TruthDisc {
                    corners: *c,
                    from_sacrum: 4 - l.index(),
                })
                .collect();
            DetSample::new(&slice, input, discs, true)
        })
        .collect();
    let left_out = given - samples.len();
    Ok((samples, left_out))
}
