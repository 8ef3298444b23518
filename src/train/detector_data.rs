//! The slices a detector learns and is checked on: phantoms drawn for the purpose (with their
//! thoracic discs too, so the network learns that every disc is a disc) and manifests of real
//! slices with corners and levels.

use super::detector::{DetSample, TruthDisc};
use crate::class::Level;
use crate::error::{Error, Result};
use crate::eval::detection::SliceTruth;
use crate::image::decode::DecodeOptions;
use crate::image::slice::Slice;
use crate::model::detector::DetectorInput;
use crate::phantom::{plan_subject, render, ClassMix, Phantom};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
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
) -> Vec<(DetSample, SliceTruth)> {
    render_phantoms(n, seed, threads, |ph| {
        let discs = ph
            .spine_discs
            .iter()
            .map(|(from_sacrum, corners)| TruthDisc {
                corners: *corners,
                from_sacrum: *from_sacrum,
            })
            .collect();
        let id = ph.plan.id.clone();
        (
            DetSample::new(id.clone(), id, &ph.slice, input, discs, false),
            truth_of(&ph),
        )
    })
}

/// Validation slices from `n` phantoms: the lumbar truth and the slice itself.
pub fn phantom_slices(n: usize, seed: u64, threads: usize) -> Vec<(SliceTruth, Slice)> {
    render_phantoms(n, seed, threads, |ph| (truth_of(&ph), ph.slice))
}

/// A disc's level and corners, as a manifest gives them.
type TrueDisc = (Level, [crate::Point; 4]);

/// The slices of a manifest whose rows have levels and corners, one sample per image, and the
/// SHA-256 of the manifest and its images. Rows without a level are refused: a detector must
/// learn which disc is L5S1.
pub fn manifest_samples(
    manifest: &Path,
    input: &DetectorInput,
    hasher: &mut Sha256,
) -> Result<Vec<(DetSample, SliceTruth)>> {
    let text = std::fs::read_to_string(manifest).map_err(|e| Error::io(manifest, e))?;
    hasher.update(text.as_bytes());
    let rows = crate::manifest::parse(&manifest.display().to_string(), &text)?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    let mut by_image: BTreeMap<(String, String), Vec<TrueDisc>> = BTreeMap::new();
    for (k, r) in rows.iter().enumerate() {
        let level = r.level.ok_or_else(|| {
            Error::Invalid(format!(
                "{} row {}: no level; detector training needs the level of every disc (L1L2 … L5S1)",
                manifest.display(),
                k + 2
            ))
        })?;
        by_image
            .entry((r.image.clone(), r.subject.clone()))
            .or_default()
            .push((level, r.corners));
    }
    let mut out = Vec::new();
    for ((image, subject), discs) in by_image {
        let path = base.join(&image);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        hasher.update(&bytes);
        let slice = crate::image::decode::decode(
            &bytes,
            &path.display().to_string(),
            DecodeOptions::default(),
        )?;
        let truth = SliceTruth {
            image: image.clone(),
            spacing_mm: slice.spacing_mm.map(|s| 0.5 * (s.0 + s.1)),
            discs: discs.clone(),
        };
        let t = discs
            .iter()
            .map(|(l, c)| TruthDisc {
                corners: *c,
                from_sacrum: 4 - l.index(),
            })
            .collect();
        out.push((
            DetSample::new(image, subject, &slice, input, t, true),
            truth,
        ));
    }
    Ok(out)
}
