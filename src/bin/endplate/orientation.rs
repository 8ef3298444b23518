//! `endplate fit-orientation`: teach a detector file which way up a slice is stored.

use super::common::{detector_path, threads_or_all};
use clap::Args;
use endplate::image::decode::{decode_file, DecodeOptions};
use endplate::manifest::{self, Entry};
use endplate::model::detector::upside_down;
use endplate::model::orientation::{with_layer, FeatureReader, Logistic};
use endplate::phantom::{plan_subject, render, ClassMix};
use endplate::{Error, Result, Slice};
use std::path::PathBuf;

#[derive(Args)]
pub struct FitOrientationArgs {
    /// Detector file to extend; default: the bundled detector
    #[arg(long)]
    pub detector: Option<PathBuf>,
    /// Manifest whose slices are all stored upright (head at the top): each image is learnt as
    /// stored and turned upside down; only the `image` column is read, so rows need no level,
    /// corners or label (repeatable)
    #[arg(long, required = true)]
    pub manifest: Vec<PathBuf>,
    /// Also learn this many phantom slices (upright, and turned), so that phantoms never read
    /// as upside down
    #[arg(long, default_value_t = 100)]
    pub phantoms: usize,
    /// Seed of those phantoms
    #[arg(long, default_value_t = 7001)]
    pub phantom_seed: u64,
    /// Manifest of upright slices to check on, never learnt (repeatable)
    #[arg(long)]
    pub validate: Vec<PathBuf>,
    /// Manifest of slices known to be stored upside down, to check on, never learnt
    /// (repeatable)
    #[arg(long)]
    pub validate_upside_down: Vec<PathBuf>,
    /// Strength of the L2 penalty on the standardised features' weights (0.002 gave the 15
    /// validation patients of the bundled detector a wider margin than 0.02)
    #[arg(long, default_value_t = 0.002)]
    pub l2: f64,
    /// Output detector file (the input's network and card, plus the `upside_down` output and
    /// the card's `orientation` record)
    #[arg(long)]
    pub out: PathBuf,
    /// Threads for inference (default: all cores)
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Every image the manifests name, decoded once each: rows need neither level nor corners,
/// since only the images are learnt.
fn slices(manifests: &[PathBuf]) -> Result<Vec<(String, Slice)>> {
    let (mut out, mut seen) = (Vec::new(), std::collections::HashSet::new());
    for m in manifests {
        let text = std::fs::read_to_string(m).map_err(|e| Error::io(m, e))?;
        let base = m.parent().unwrap_or(std::path::Path::new("."));
        for entry in manifest::parse_entries(&m.display().to_string(), &text)? {
            let image = match entry {
                Entry::Disc(r) => r.image,
                Entry::Detect(d) => d.image,
            };
            let path = base.join(&image);
            if seen.insert(path.clone()) {
                out.push((image, decode_file(&path, DecodeOptions::default())?));
            }
        }
    }
    Ok(out)
}

/// Features of each slice as stored and turned upside down, with a progress bar.
fn features(reader: &FeatureReader, slices: &[&Slice], what: &str) -> Result<Vec<[Vec<f32>; 2]>> {
    let bar = indicatif::ProgressBar::new(slices.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what}: {{bar:40}} {{pos}}/{{len}} slices  eta {{eta}}"
        ))
        .expect("template"),
    );
    let out = slices
        .iter()
        .map(|s| {
            let f = [
                reader.features(s)?,
                reader.features(&s.flipped_vertically())?,
            ];
            bar.inc(1);
            Ok(f)
        })
        .collect();
    bar.finish_and_clear();
    out
}

/// The slices of a set that the detector would turn wrongly, by the rule it runs
/// ([`upside_down`]): each slice judged as stored and turned, `stored_upright` saying which of
/// the two is the true upright one. Also the smallest gap between the two logits, in favour of
/// the right answer.
fn check(
    layer: &Logistic,
    pairs: &[[Vec<f32>; 2]],
    stored_upright: bool,
) -> (serde_json::Value, Vec<usize>) {
    let (mut wrong, mut right, mut worst) = (Vec::new(), 0, f32::INFINITY);
    // Upright views whose logit is above 0 cost the detector a run on the turned slice.
    let mut second_runs = 0;
    for (k, [stored, turned]) in pairs.iter().enumerate() {
        let (up, down) = if stored_upright {
            (layer.logit(stored), layer.logit(turned))
        } else {
            (layer.logit(turned), layer.logit(stored))
        };
        second_runs += usize::from(up > 0.0);
        // The upright view must stay, the upside-down one must be turned.
        let views = usize::from(!upside_down(up, down)) + usize::from(upside_down(down, up));
        right += views;
        if views < 2 {
            wrong.push(k);
        }
        worst = worst.min(down - up);
    }
    let n = pairs.len();
    let value = serde_json::json!({
        "slices": n,
        "views": 2 * n,
        "views_read_right": right,
        "upright_views_run_twice": second_runs,
        "smallest_gap_logit": if n > 0 { worst as f64 } else { f64::NAN },
    });
    (value, wrong)
}

pub fn run(a: FitOrientationArgs) -> Result<()> {
    endplate::model::inference::set_threads(threads_or_all(a.threads));
    let path = detector_path(a.detector.as_deref())?;
    let source = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let reader = FeatureReader::new(&source, &bytes)?;

    let learn = slices(&a.manifest)?;
    if learn.is_empty() {
        return Err(Error::Invalid(
            "the --manifest files hold no slice; give manifests of slices stored upright".into(),
        ));
    }
    let phantoms: Vec<Slice> = (0..a.phantoms)
        .map(|i| render(&plan_subject(a.phantom_seed, i, ClassMix::Balanced, 16)).slice)
        .collect();
    let all: Vec<&Slice> = learn.iter().map(|(_, s)| s).chain(&phantoms).collect();
    let pairs = features(&reader, &all, "learning")?;
    let x: Vec<Vec<f32>> = pairs.iter().flat_map(|p| p.iter().cloned()).collect();
    let y: Vec<bool> = pairs.iter().flat_map(|_| [false, true]).collect();
    let layer = Logistic::fit(&x, &y, a.l2).expect("both classes are present by construction");

    let mut checks = serde_json::Map::new();
    checks.insert("learnt".into(), check(&layer, &pairs, true).0);
    for (sets, upright) in [(&a.validate, true), (&a.validate_upside_down, false)] {
        for m in sets.iter() {
            let s = slices(std::slice::from_ref(m))?;
            let refs: Vec<&Slice> = s.iter().map(|(_, s)| s).collect();
            let p = features(&reader, &refs, &m.display().to_string())?;
            let (c, wrong) = check(&layer, &p, upright);
            for k in wrong {
                let [stored, turned] = &p[k];
                eprintln!(
                    "{}: {} would be turned the wrong way (logit as stored {:.2}, turned {:.2})",
                    m.display(),
                    s[k].0,
                    layer.logit(stored),
                    layer.logit(turned)
                );
            }
            checks.insert(m.display().to_string(), c);
        }
    }
    for (set, c) in &checks {
        eprintln!(
            "{set}: {} of {} views read the right way up ({} slices, each as stored and turned); smallest gap {:.2}; upright views that needed the turned one too: {}",
            c["views_read_right"], c["views"], c["slices"], c["smallest_gap_logit"].as_f64().unwrap_or(f64::NAN), c["upright_views_run_twice"]
        );
    }

    let proto = with_layer(&source, &bytes, &layer)?;
    let mut card = reader.card().clone();
    let names: Vec<String> = a.manifest.iter().map(|m| m.display().to_string()).collect();
    card.orientation = serde_json::json!({
        "fitted_on": format!(
            "{} slices of {} stored upright and {} phantoms (seed {}), each also turned upside down",
            learn.len(), names.join(" + "), a.phantoms, a.phantom_seed
        ),
        "features": "pooled enc3b and enc4b activations of the whole-slice view",
        "l2": a.l2,
        "checks": checks,
        "code_version": endplate::VERSION,
    });
    let out = endplate::model::file::encode_with_card(&source, proto, &card)?;
    // Refuse to write what the detector would not load.
    let loaded = endplate::model::detector::Detector::from_bytes(&source, &out)?;
    if !loaded.has_orientation() {
        return Err(Error::Invalid(
            "the written detector has no orientation output".into(),
        ));
    }
    endplate::files::write_atomic(&a.out, &out)?;
    eprintln!("wrote {} ({} bytes)", a.out.display(), out.len());
    Ok(())
}
