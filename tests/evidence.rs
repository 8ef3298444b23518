//! Evidence maps: the bundled model's occlusion map of a phantom Schmorl's node is a map of the
//! whole ROI, with positive mass, and more of it on the drawn lesion than the lesion's share of
//! the ROI; the lesion mask is empty for a normal disc; `classify --evidence` writes one PNG per
//! disc.

use endplate::model::evidence::{occlusion, PATCH, STRIDE};
use endplate::phantom::{plan_subject, render, ClassMix};
use endplate::{Class, Classifier, Roi};

fn bundled() -> Classifier {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/endplate-default.onnx");
    Classifier::from_bytes(path, &std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn schmorl_map_leans_on_the_lesion_and_normal_discs_have_no_lesion() {
    let model = bundled();
    let p = model.card().preprocessing.clone();
    let (ph, k) = (0..40)
        .find_map(|i| {
            let ph = render(&plan_subject(9001, i, ClassMix::Balanced, 16));
            let k = ph
                .discs
                .iter()
                .position(|d| d.class == Class::Schmorl && d.severity > 0.6)?;
            Some((ph, k))
        })
        .expect("a clear Schmorl's node among 40 phantoms");
    let roi = Roi::extract(&ph.slice, &ph.discs[k].corners, &p).unwrap();
    let e = occlusion(&model, &roi).unwrap();
    let side = (roi.size - PATCH).div_ceil(STRIDE) + 1;
    assert_eq!(e.runs, side * side);
    assert_eq!(e.drops.len(), roi.size * roi.size);
    assert!(e.max_drop > 0.0, "{e:?}");
    let lesion = ph.lesion_roi(k, &p).unwrap();
    let mask: Vec<f32> = lesion
        .pixels
        .iter()
        .map(|&v| (v > 0.0) as u8 as f32)
        .collect();
    let share = mask.iter().sum::<f32>() as f64 / mask.len() as f64;
    assert!(share > 0.0 && share < 0.5, "lesion share {share}");
    if e.class == Class::Schmorl {
        let inside = e.mass_inside(&mask).unwrap();
        assert!(inside > share, "mass inside {inside} vs area {share}");
    }
    let normal = ph
        .discs
        .iter()
        .position(|d| d.class == Class::Normal)
        .map(|j| ph.lesion_roi(j, &p).unwrap());
    if let Some(n) = normal {
        assert!(n.pixels.iter().all(|&v| v == 0.0));
    }
    assert!(ph.lesion_roi(99, &p).is_err());
}

#[test]
fn classify_writes_one_evidence_png_per_disc() {
    let dir = std::env::temp_dir().join(format!("endplate-evidence-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ph = render(&plan_subject(9001, 0, ClassMix::Balanced, 8));
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("slice.png");
    image::GrayImage::from_raw(
        ph.slice.width as u32,
        ph.slice.height as u32,
        ph.slice.pixels.iter().map(|&v| v as u8).collect(),
    )
    .unwrap()
    .save(&img)
    .unwrap();
    let c = ph.discs[0].corners;
    let corners = c
        .iter()
        .map(|q| format!("{:.2},{:.2}", q.x, q.y))
        .collect::<Vec<_>>()
        .join(",");
    let out = dir.join("maps");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_endplate"))
        .args(["classify", "--image"])
        .arg(&img)
        .args(["--corners", &corners, "--level", "L1L2", "--evidence"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let pngs: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    assert_eq!(pngs.len(), 1, "{pngs:?}");
    let png = image::open(&pngs[0]).unwrap();
    assert_eq!((png.width(), png.height()), (128, 128));
    assert!(String::from_utf8_lossy(&status.stderr).contains("evidence: occlusion"));
    let _ = std::fs::remove_dir_all(&dir);
}
