//! The training data: every labelled disc of one or more manifests cut once into its ROI, or
//! the self-supervised pretext set of quarter turns, with the hash that the model card records.
//! Each disc remembers which manifest it came from (its source), so the sampler can balance
//! real binary-labelled discs against four-class phantoms.

use super::augment::quarter_turns;
use crate::class::{Class, Label};
use crate::disc::roi::{Roi, RoiParams};
use crate::error::{Error, Result};
use crate::image::decode::DecodeOptions;
use crate::manifest::Row;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Labelled discs, preprocessed once.
pub struct Dataset {
    pub rois: Vec<Roi>,
    pub labels: Vec<Label>,
    /// Subjects, prefixed by their manifest, so two data sets' "subject 1" never merge.
    pub subjects: Vec<String>,
    /// Index of the manifest each disc came from.
    pub sources: Vec<usize>,
    /// The manifests, in source order.
    pub source_names: Vec<String>,
    /// SHA-256 of the manifest and every image it names.
    pub hash: String,
    /// Per disc, more ROIs cut with its corners moved at random ([`CornerJitter`]); empty
    /// when the run asked for none. Training draws among the disc's ROI and these.
    pub variants: Vec<Vec<Roi>>,
    /// Per disc, its auxiliary targets in the run's column order ([`auxiliary_targets`]),
    /// `None` where its manifest leaves the cell empty or has no such column; empty when the
    /// run names no auxiliary column.
    pub auxiliary: Vec<Vec<Option<f32>>>,
}

/// A subject as `Dataset::subjects` (and `train --folds`'s predictions.csv) writes it,
/// `MANIFEST:subject`, without the prefix of whichever of `manifests` it came from: the person.
/// A subject of no listed manifest is returned whole.
pub fn person<'a>(subject: &'a str, manifests: &[String]) -> &'a str {
    manifests
        .iter()
        .find_map(|m| subject.strip_prefix(m.as_str())?.strip_prefix(':'))
        .unwrap_or(subject)
}

/// Corners moved at random before extra ROIs are cut, so the network learns to give the same
/// answer wherever, within a millimetre or two, a reader or the detector puts them: a 0.5 mm
/// move of hand-placed corners changed the class of 13–15 % of real test discs
/// (`bench/corner_noise.py`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CornerJitter {
    /// Standard deviation of each corner's move, each axis, as a fraction of the disc's width
    /// (a lumbar disc is about 40 mm wide, so 0.03 is about 1.2 mm).
    pub fraction: f64,
    /// Extra ROIs per disc.
    pub copies: usize,
    pub seed: u64,
}

impl CornerJitter {
    /// The four corners, each moved by a normal draw of sd `fraction` × the disc's width on
    /// each axis: what a hand or a detector might have placed instead.
    pub fn moved(
        &self,
        c: [crate::disc::geometry::Point; 4],
        rng: &mut rand::rngs::SmallRng,
    ) -> [crate::disc::geometry::Point; 4] {
        use rand_distr::{Distribution, Normal};
        let width = 0.5 * (c[0].distance(c[1]) + c[2].distance(c[3]));
        // Only corners that are not numbers give no distribution: leave those where they are.
        let Ok(normal) = Normal::new(0.0, (self.fraction * width).max(1e-9)) else {
            return c;
        };
        c.map(|q| {
            crate::disc::geometry::Point::new(
                q.x + normal.sample(&mut *rng),
                q.y + normal.sample(&mut *rng),
            )
        })
    }

    /// `copies` ROIs of a disc cut with its corners [`moved`](Self::moved): what training learns
    /// from and what the checks that average over moved corners see. A move that leaves no disc
    /// to cut (the endplates crossing on a thin disc) gives the disc's `own` ROI instead.
    pub fn copies(
        &self,
        slice: &crate::image::slice::Slice,
        corners: [crate::disc::geometry::Point; 4],
        own: &Roi,
        p: &RoiParams,
        rng: &mut rand::rngs::SmallRng,
    ) -> Vec<Roi> {
        (0..self.copies)
            .map(|_| {
                Roi::extract(slice, &self.moved(corners, rng), p).unwrap_or_else(|_| own.clone())
            })
            .collect()
    }
}

impl Dataset {
    /// Decode every image of each manifest once and cut every labelled disc's ROI. Unlabelled
    /// rows are skipped.
    pub fn load(manifests: &[PathBuf], p: &RoiParams) -> Result<Dataset> {
        Self::load_jittered(manifests, p, None)
    }

    /// [`Dataset::load`], and with `jitter`, its extra ROIs of every disc.
    pub fn load_jittered(
        manifests: &[PathBuf],
        p: &RoiParams,
        jitter: Option<CornerJitter>,
    ) -> Result<Dataset> {
        let mut hasher = Sha256::new();
        let mut data = Dataset {
            rois: Vec::new(),
            labels: Vec::new(),
            subjects: Vec::new(),
            sources: Vec::new(),
            source_names: manifests.iter().map(|m| m.display().to_string()).collect(),
            hash: String::new(),
            variants: Vec::new(),
            auxiliary: Vec::new(),
        };
        for (source, m) in manifests.iter().enumerate() {
            let (labelled, rois) = read_discs(m, p, &mut hasher, |rows| rows.retain(learnt_from))?;
            if rois.is_empty() {
                return Err(Error::Invalid(format!(
                    "{}: no labelled rows to learn from (the label column is empty everywhere)",
                    m.display()
                )));
            }
            if let Some(j) = jitter {
                let base = m.parent().unwrap_or(Path::new("."));
                data.variants
                    .extend(jittered_rois(&labelled, &rois, base, p, j, source)?);
            }
            data.rois.extend(rois);
            for r in &labelled {
                data.labels.push(r.label.expect("labelled"));
                data.subjects.push(format!("{}:{}", m.display(), r.subject));
                data.sources.push(source);
            }
        }
        data.hash = format!("{:x}", hasher.finalize());
        Ok(data)
    }

    /// The ROI a training draw of disc `i` sees: its own, or one of its jittered copies.
    pub fn draw_roi(&self, i: usize, rng: &mut impl rand::Rng) -> &Roi {
        match self.variants.get(i) {
            Some(v) if !v.is_empty() => match rng.random_range(0..=v.len()) {
                0 => &self.rois[i],
                k => &v[k - 1],
            },
            _ => &self.rois[i],
        }
    }

    /// Discs per (source, label key), for the log and the card.
    pub fn counts(&self) -> Vec<[usize; Label::KEYS]> {
        let mut out = vec![[0; Label::KEYS]; self.source_names.len().max(1)];
        for (l, &s) in self.labels.iter().zip(&self.sources) {
            out[s][l.key()] += 1;
        }
        out
    }

    /// Each disc's subject as its manifest names it ([`person`]): the person that the
    /// by-subject split keeps on one side across manifests (the same patient's lumbar and
    /// thoracic discs listed in two files are still one patient).
    pub fn people(&self) -> Vec<&str> {
        self.subjects
            .iter()
            .map(|s| person(s, &self.source_names))
            .collect()
    }

    /// The stratification and balancing key of each disc: its source and label together.
    pub fn strata(&self) -> Vec<usize> {
        self.labels
            .iter()
            .zip(&self.sources)
            .map(|(l, &s)| s * Label::KEYS + l.key())
            .collect()
    }

    /// The self-supervised pretext set ([`rotation_pretext`]) of the discs of several manifests,
    /// labelled or not, at most `max_discs` (the first rows) of each, and the discs left out.
    /// Subjects are kept apart per manifest, so the by-subject split never mixes two data sets'
    /// "subject 1".
    ///
    /// Unlabelled rows are where a manifest keeps what it could not grade — a disc whose
    /// endplates nearly meet, say — so a row whose corners frame no disc is left out and named
    /// ("manifest: image level: reason") instead of stopping a run that cannot use it anyway.
    pub fn load_pretext(
        manifests: &[PathBuf],
        max_discs: Option<usize>,
        p: &RoiParams,
    ) -> Result<(Dataset, Vec<String>)> {
        let mut hasher = Sha256::new();
        let (mut rois, mut subjects, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        for m in manifests {
            let (rows, r) = read_discs(m, p, &mut hasher, |rows| {
                rows.truncate(max_discs.unwrap_or(usize::MAX));
                rows.retain(|r| {
                    let frame = crate::disc::geometry::DiscFrame::of(&r.corners);
                    if let Err(e) = &frame {
                        let level = r.level.map(|l| l.to_string()).unwrap_or_default();
                        skipped.push(format!("{}: {} {level}: {e}", m.display(), r.image));
                    }
                    frame.is_ok()
                });
            })?;
            rois.extend(r);
            subjects.extend(
                rows.iter()
                    .map(|r| format!("{}:{}", m.display(), r.subject)),
            );
        }
        let mut data = rotation_pretext(&rois, &subjects, &format!("{:x}", hasher.finalize()));
        data.source_names = vec!["rotation pretext".into()];
        Ok((data, skipped))
    }
}

/// The rows training learns from: the labelled ones. [`Dataset::load`] keeps these, and
/// [`auxiliary_targets`] must line its targets up with them.
fn learnt_from(r: &Row) -> bool {
    r.label.is_some()
}

/// Every labelled disc's auxiliary targets ([`Dataset::auxiliary`]), in the order
/// [`Dataset::load`] reads the same manifests: binary columns (`0`, `1`, or a probability
/// between) that describe the disc in other ways — SPIDER's other gradings, say — which training
/// may learn next to the label from the same pooled features
/// ([`super::TrainConfig::auxiliary`]). Reads the manifests' text only, so a bad column fails
/// before any image is decoded. A manifest without a column (phantoms) leaves its discs without
/// that target; a column no manifest has is refused, so a misspelt name cannot silently train
/// nothing. No columns: no targets, and no manifest is read.
pub fn auxiliary_targets(
    manifests: &[PathBuf],
    columns: &[String],
) -> Result<Vec<Vec<Option<f32>>>> {
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let mut found = vec![false; columns.len()];
    let mut out = Vec::new();
    for m in manifests {
        let name = m.display().to_string();
        let text = std::fs::read_to_string(m).map_err(|e| Error::io(m, e))?;
        let labelled: Vec<bool> = crate::manifest::parse(&name, &text)?
            .iter()
            .map(learnt_from)
            .collect();
        let mut values = Vec::with_capacity(columns.len());
        for (c, f) in columns.iter().zip(&mut found) {
            let column = crate::manifest::number_column(
                &name,
                &text,
                c,
                |v| (0.0..=1.0).contains(&v),
                "0, 1 or a probability between them (leave the cell empty where unknown)",
            )?;
            *f |= column.is_some();
            values.push(column.unwrap_or_else(|| vec![None; labelled.len()]));
        }
        for (row, _) in labelled.iter().enumerate().filter(|(_, &l)| l) {
            out.push(values.iter().map(|v| v[row].map(|x| x as f32)).collect());
        }
    }
    if let Some((c, _)) = columns.iter().zip(&found).find(|(_, f)| !**f) {
        return Err(Error::Invalid(format!(
                "--auxiliary {c}: no manifest of this run ({}) has a column `{c}`; name a column of the header (case does not matter)",
                manifests
                    .iter()
                    .map(|m| m.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
    }
    Ok(out)
}

/// The self-supervised pretext data set: every ROI in its four quarter turns, labelled by the
/// turn (class index k = k quarter turns, reusing the four-way head). A network that can tell
/// which way up a disc region is must learn endplates, vertebral bodies, the disc and the CSF
/// side, which is what the lesion task needs too, and it needs no lesion labels: unlabelled
/// phantoms and real slices both serve.
fn rotation_pretext(rois: &[Roi], subjects: &[String], source_hash: &str) -> Dataset {
    let mut out = Dataset {
        rois: Vec::with_capacity(4 * rois.len()),
        labels: Vec::with_capacity(4 * rois.len()),
        subjects: Vec::with_capacity(4 * rois.len()),
        sources: vec![0; 4 * rois.len()],
        source_names: Vec::new(),
        hash: format!("{:x}", Sha256::digest(format!("rotation:{source_hash}"))),
        variants: Vec::new(),
        auxiliary: Vec::new(),
    };
    for (roi, subject) in rois.iter().zip(subjects) {
        for (k, class) in Class::ALL.iter().enumerate() {
            out.rois.push(quarter_turns(roi, k));
            out.labels.push(Label::Class(*class));
            out.subjects.push(subject.clone());
        }
    }
    out
}

/// [`CornerJitter::copies`] of every row's disc, seeded by the run's seed, the manifest and the
/// row.
fn jittered_rois(
    rows: &[Row],
    own: &[Roi],
    base: &Path,
    p: &RoiParams,
    j: CornerJitter,
    source: usize,
) -> Result<Vec<Vec<Roi>>> {
    use rand::SeedableRng;
    let mut out: Vec<Vec<Roi>> = vec![Vec::new(); rows.len()];
    crate::manifest::each_slice(
        rows,
        base,
        DecodeOptions::default(),
        |_| (),
        |_, slice, idx| {
            for &i in idx {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(
                    j.seed
                        ^ ((source as u64) << 40)
                        ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                out[i] = j.copies(slice, rows[i].corners, &own[i], p, &mut rng);
            }
            Ok(())
        },
    )?;
    Ok(out)
}

/// The rows of a manifest that `select` keeps, and their ROIs; the manifest text and every image
/// read go into `hasher`, so a model's card can name exactly what it learnt from.
fn read_discs(
    manifest: &Path,
    p: &RoiParams,
    hasher: &mut Sha256,
    select: impl FnOnce(&mut Vec<Row>),
) -> Result<(Vec<Row>, Vec<Roi>)> {
    let text = std::fs::read_to_string(manifest).map_err(|e| Error::io(manifest, e))?;
    hasher.update(text.as_bytes());
    let mut rows = crate::manifest::parse(&manifest.display().to_string(), &text)?;
    select(&mut rows);
    let base = manifest.parent().unwrap_or(Path::new("."));
    let rois = crate::manifest::rois(&rows, base, DecodeOptions::default(), p, |b| {
        hasher.update(b)
    })?;
    Ok((rows, rois))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_person_is_the_subject_without_its_manifests_prefix() {
        let manifests = ["data/spider/manifest.csv".to_string(), "t.csv".to_string()];
        assert_eq!(
            super::person("data/spider/manifest.csv:spider_6", &manifests),
            "spider_6"
        );
        assert_eq!(super::person("t.csv:spider_6", &manifests), "spider_6");
        // A subject whose own name holds a colon keeps it; an unknown prefix stays whole.
        assert_eq!(super::person("t.csv:a:b", &manifests), "a:b");
        assert_eq!(super::person("other.csv:x", &manifests), "other.csv:x");
    }
}
