//! The report folder that `evaluate` and `train` leave behind: the numbers (`metrics.json`,
//! `confusion.csv`) and the pictures a reader checks first (confusion matrix, one-vs-rest ROC
//! curves, reliability diagram, and learning curves when there was training).

use super::curves::{auc, roc_curve, ReliabilityBin};
use super::plot::{confusion_chart, line_chart, Series};
use crate::class::{Class, Label};
use crate::error::Result;
use std::path::Path;

/// Write the report for `probs` (calibrated) against `truth`. `metrics` is
/// [`super::metrics::evaluate`]'s JSON (with anything else the caller keeps there, such as the
/// learning history); the confusion matrix and reliability diagram are drawn from it, the ROC
/// curves from the probabilities. `charts` are further (file name, SVG) pairs.
pub fn write(
    dir: &Path,
    metrics: &serde_json::Value,
    truth: &[Class],
    probs: &[[f32; 4]],
    charts: &[(&str, String)],
) -> Result<()> {
    let bad = |what: &str| {
        crate::Error::Invalid(format!("metrics without {what}: use metrics::evaluate"))
    };
    let bins: Vec<ReliabilityBin> = serde_json::from_value(metrics["reliability"]["bins"].clone())
        .map_err(|_| bad("reliability bins"))?;
    let ece = metrics["reliability"]["ece"]
        .as_f64()
        .ok_or_else(|| bad("ece"))?;
    let confusion: Vec<Vec<usize>> =
        serde_json::from_value(metrics["confusion"].clone()).map_err(|_| bad("confusion"))?;
    let put = |name: &str, text: &str| crate::files::write_atomic(&dir.join(name), text.as_bytes());
    put(
        "metrics.json",
        &serde_json::to_string_pretty(&metrics).expect("json"),
    )?;

    let mut csv = String::from("truth\\predicted,normal,wavy,notched,schmorl\n");
    for (c, row) in Class::ALL.iter().zip(&confusion) {
        let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        csv.push_str(&format!("{},{}\n", c.id(), cells.join(",")));
    }
    put("confusion.csv", &csv)?;
    let names: Vec<&str> = Class::ALL.iter().map(|c| c.id()).collect();
    put(
        "confusion.svg",
        &confusion_chart(
            &format!("Confusion matrix (n = {})", truth.len()),
            &names,
            &confusion,
        ),
    )?;

    let mut roc: Vec<Series> = Class::ALL
        .iter()
        .map(|c| {
            let scores: Vec<f64> = probs.iter().map(|p| p[c.index()] as f64).collect();
            let positive: Vec<bool> = truth.iter().map(|t| t == c).collect();
            let auc = auc(&scores, &positive);
            Series::new(
                format!("{} {:.3}", c.id(), auc),
                roc_curve(&scores, &positive),
            )
        })
        .collect();
    roc.push(Series::reference("chance", vec![(0.0, 0.0), (1.0, 1.0)]));
    put(
        "roc.svg",
        &line_chart(
            "One-vs-rest ROC (legend: AUC)",
            "false-positive rate",
            "true-positive rate",
            &roc,
            Some((0.0, 1.0)),
            Some((0.0, 1.0)),
        ),
    )?;

    let occupied: Vec<(f64, f64)> = bins
        .iter()
        .filter(|b| b.n > 0)
        .map(|b| (b.confidence, b.accuracy))
        .collect();
    put(
        "reliability.svg",
        &line_chart(
            &format!("Reliability (ECE {ece:.3})"),
            "mean top-class probability",
            "accuracy",
            &[
                Series::new("model", occupied),
                Series::reference("perfect", vec![(0.0, 0.0), (1.0, 1.0)]),
            ],
            Some((0.0, 1.0)),
            Some((0.0, 1.0)),
        ),
    )?;
    for (name, svg) in charts {
        put(name, svg)?;
    }
    Ok(())
}

/// The report of [`super::labelled::evaluate_labelled`]: with four-class truth, [`write`] plus
/// the lesion-vs-normal ROC; with binary truth, `metrics.json`, the lesion-vs-normal ROC
/// (`roc_lesion.svg`) and `charts`.
pub fn write_labelled(
    dir: &Path,
    metrics: &serde_json::Value,
    truth: &[Label],
    probs: &[[f32; 4]],
    charts: &[(&str, String)],
) -> Result<()> {
    let classes: Option<Vec<Class>> = truth.iter().map(|l| l.class()).collect();
    match &classes {
        Some(c) => write(dir, metrics, c, probs, charts)?,
        None => {
            crate::files::write_atomic(
                &dir.join("metrics.json"),
                serde_json::to_string_pretty(metrics)
                    .expect("json")
                    .as_bytes(),
            )?;
            for (name, svg) in charts {
                crate::files::write_atomic(&dir.join(name), svg.as_bytes())?;
            }
        }
    }
    let scores: Vec<f64> = probs.iter().map(|p| 1.0 - p[0] as f64).collect();
    let positive: Vec<bool> = truth.iter().map(|l| l.is_lesion()).collect();
    let series = [
        Series::new(
            format!("P(lesion), AUC {:.3}", auc(&scores, &positive)),
            roc_curve(&scores, &positive),
        ),
        Series::reference("chance", vec![(0.0, 0.0), (1.0, 1.0)]),
    ];
    crate::files::write_atomic(
        &dir.join("roc_lesion.svg"),
        line_chart(
            &format!(
                "Lesion vs normal ({} lesion, {} normal discs)",
                positive.iter().filter(|&&p| p).count(),
                positive.iter().filter(|&&p| !p).count()
            ),
            "false-positive rate",
            "true-positive rate",
            &series,
            Some((0.0, 1.0)),
            Some((0.0, 1.0)),
        )
        .as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_folder_holds_numbers_and_pictures() {
        let dir = tempfile::tempdir().unwrap();
        let truth = [Class::Normal, Class::Wavy, Class::Notched, Class::Schmorl];
        let probs = [
            [0.75, 0.1, 0.1, 0.05],
            [0.1, 0.75, 0.1, 0.05],
            [0.1, 0.65, 0.2, 0.05],
            [0.1, 0.1, 0.05, 0.75],
        ];
        let m = crate::eval::metrics::evaluate(&truth, &probs, 0, 1);
        write(
            dir.path(),
            &m,
            &truth,
            &probs,
            &[("extra.svg", "<svg/>".into())],
        )
        .unwrap();
        let out: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("metrics.json")).unwrap(),
        )
        .unwrap();
        // Three right at 0.75, one wrong at 0.65: ECE = 3/4 * 0.25 + 1/4 * 0.65.
        let ece = out["reliability"]["ece"].as_f64().unwrap();
        assert!((ece - 0.35).abs() < 1e-6, "{ece}");
        let csv = std::fs::read_to_string(dir.path().join("confusion.csv")).unwrap();
        assert!(csv.contains("notched,0,1,0,0"), "{csv}");
        for f in [
            "metrics.json",
            "confusion.svg",
            "roc.svg",
            "reliability.svg",
            "extra.svg",
        ] {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
        let roc = std::fs::read_to_string(dir.path().join("roc.svg")).unwrap();
        assert!(roc.contains("schmorl 1.000"), "{roc}");
    }
}
