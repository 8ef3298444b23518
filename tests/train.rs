//! Training on a few phantoms for one or two epochs (the real run is a documented command): the
//! loop runs, checkpoints and resumes, calibrates, writes a model whose card says what it is, and
//! the exported ONNX run by tract gives the training framework's own logits.
#![cfg(feature = "train")]

use endplate::model::card::ModelCard;
use endplate::model::file::{write_model, BatchNorm};
use endplate::model::inference::mirrored;
use endplate::model::resnet::Architecture;
use endplate::phantom::{plan_subject, render, ClassMix};
use endplate::train::{
    self, network::ResNet18, Dataset, EpochLog, Progress, TrainConfig, Unfreeze,
};
use endplate::{Classifier, RoiParams};

struct Quiet(Vec<EpochLog>);
impl Progress for Quiet {
    fn batch(&mut self, _: usize, _: usize, _: usize, _: f64, _: f64, _: f64) {}
    fn epoch(&mut self, log: &EpochLog) {
        self.0.push(log.clone());
    }
}

/// A small phantom data set on disk, written the way `endplate synth` writes it.
fn phantom_set(dir: &std::path::Path, subjects: usize) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut rows = Vec::new();
    for i in 0..subjects {
        let mut plan = plan_subject(77, i, ClassMix::Balanced, 8);
        // Small slices keep the test quick; the anatomy scales with the spacing.
        plan.spacing_mm *= plan.height as f64 / 256.0;
        plan.width = plan.width * 256 / plan.height;
        plan.height = 256;
        let ph = render(&plan);
        let file = format!("images/{}.png", plan.id);
        let img = image::GrayImage::from_raw(
            ph.slice.width as u32,
            256,
            ph.slice.pixels.iter().map(|&v| v as u8).collect(),
        )
        .unwrap();
        img.save(dir.join(&file)).unwrap();
        for d in &ph.discs {
            rows.push(endplate::manifest::Row {
                image: file.clone(),
                subject: plan.id.clone(),
                level: Some(d.level),
                label: Some(d.class.into()),
                corners: d.corners,
            });
        }
    }
    let path = dir.join("manifest.csv");
    std::fs::write(&path, endplate::manifest::write(&rows, &[], &[])).unwrap();
    path
}

#[test]
fn short_training_run_checkpoints_resumes_calibrates_and_exports_faithfully() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = phantom_set(dir.path(), 8);
    let data = Dataset::load(std::slice::from_ref(&manifest), &RoiParams::default()).unwrap();
    assert_eq!(data.rois.len(), 40);
    let arch = Architecture::resnet18(4);
    let ckpt = dir.path().join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    let config = TrainConfig {
        epochs: 1,
        batch: 8,
        seed: 3,
        unfreeze: Unfreeze::All,
        synthetic: true,
        data_description: "test phantoms".into(),
        ..TrainConfig::default()
    };

    let mut log = Quiet(Vec::new());
    let first = train::train(
        &data,
        config.clone(),
        arch.random_weights(3),
        &ckpt,
        false,
        &mut log,
    )
    .unwrap();
    assert_eq!(log.0.len(), 1);
    assert!(log.0[0].train_loss.is_finite() && log.0[0].val_loss.is_finite());
    assert_eq!(first.state.train.len() + first.state.val.len(), 40);
    assert!(ckpt.join("checkpoint.json").is_file());
    assert_eq!(first.state.weights_file, "epoch-001.onnx");
    assert!(ckpt.join("epoch-001.onnx").is_file() && ckpt.join("epoch-001.adam.bpk").is_file());

    // Resume for a second epoch: continues from epoch 1, keeps the history.
    let mut more = config.clone();
    more.epochs = 2;
    let state_path = ckpt.join("checkpoint.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["config"]["epochs"] = 2.into();
    std::fs::write(&state_path, state.to_string()).unwrap();
    let mut log2 = Quiet(Vec::new());
    let second = train::train(
        &data,
        more.clone(),
        arch.random_weights(99),
        &ckpt,
        true,
        &mut log2,
    )
    .unwrap();
    assert_eq!(log2.0.len(), 1);
    assert_eq!(log2.0[0].epoch, 1);
    assert_eq!(second.state.history.len(), 2);
    assert_eq!(
        second.state.val, first.state.val,
        "the split survives a resume"
    );
    assert!(
        !ckpt.join("epoch-001.onnx").exists(),
        "the previous epoch's pair is removed once the next is safe"
    );

    // Exactness: the same two epochs in one go give the same weights as one epoch plus a resume,
    // because the weights, Adam's moments and step count, the split, the learning rate and each
    // epoch's draws all come back from the checkpoint.
    let straight_dir = dir.path().join("straight");
    std::fs::create_dir_all(&straight_dir).unwrap();
    let straight = train::train(
        &data,
        more.clone(),
        arch.random_weights(3),
        &straight_dir,
        false,
        &mut Quiet(Vec::new()),
    )
    .unwrap();
    let read = |p: std::path::PathBuf| {
        let bytes = std::fs::read(&p).unwrap();
        let proto = endplate::model::file::parse_proto("ckpt", &bytes).unwrap();
        endplate::model::file::read_initializers("ckpt", &proto).unwrap()
    };
    let resumed_w = read(ckpt.join("epoch-002.onnx"));
    let straight_w = read(straight_dir.join("epoch-002.onnx"));
    let mut worst = 0f32;
    for (name, t) in &straight_w {
        for (a, b) in t.data.iter().zip(&resumed_w[name].data) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(
        worst <= 1e-6,
        "resumed run drifts from the straight run by {worst}"
    );
    assert_eq!(
        straight.state.history[1].train_loss,
        second.state.history[1].train_loss
    );

    // The card: calibrated, synthetic, with the phantom warning.
    let card = &second.card;
    assert!(matches!(
        card.calibration,
        endplate::model::calibration::Calibration::Platt { .. }
    ));
    assert!(card.training.synthetic && card.display_warning().unwrap().contains("phantoms"));
    assert_eq!(card.training.data_hash.as_deref(), Some(data.hash.as_str()));

    // Export: tract on the written ONNX (BatchNorm folded) against burn in eval mode.
    let bytes = write_model(&arch, &second.weights, card, BatchNorm::Fold).unwrap();
    let tract = Classifier::from_bytes("trained", &bytes).unwrap();
    let device = burn::tensor::Device::flex();
    let net = ResNet18::from_weights(&arch, &second.weights, &device).unwrap();
    let idx: Vec<usize> = (0..6).collect();
    let burn_logits = train::predict(&net, &data, &idx, &RoiParams::default(), false, &device);
    let input: Vec<f32> = idx
        .iter()
        .flat_map(|&i| data.rois[i].to_tensor(&RoiParams::default()))
        .collect();
    let tract_logits = tract.logits(input.clone(), idx.len()).unwrap();
    let close = |a: &[[f32; 4]], b: &[[f32; 4]]| {
        a.iter()
            .zip(b)
            .all(|(a, b)| (0..4).all(|k| (a[k] - b[k]).abs() <= 1e-4))
    };
    assert!(
        close(&burn_logits, &tract_logits),
        "burn {burn_logits:?} vs tract {tract_logits:?}"
    );

    // Averaged with the mirror image: burn (validation, calibration) and tract (every reader)
    // agree, and both are the mean of the two views' plain logits.
    let mirror_card = ModelCard {
        mirror_average: true,
        ..card.clone()
    };
    let bytes = write_model(&arch, &second.weights, &mirror_card, BatchNorm::Fold).unwrap();
    let tract_mirror = Classifier::from_bytes("mirror", &bytes).unwrap();
    let averaged = tract_mirror.logits(input.clone(), idx.len()).unwrap();
    let burn_averaged = train::predict(&net, &data, &idx, &RoiParams::default(), true, &device);
    assert!(
        close(&burn_averaged, &averaged),
        "burn {burn_averaged:?} vs tract {averaged:?}"
    );
    let flipped = tract
        .logits(mirrored(&input, RoiParams::default().size), idx.len())
        .unwrap();
    let mean: Vec<[f32; 4]> = tract_logits
        .iter()
        .zip(&flipped)
        .map(|(a, b)| std::array::from_fn(|k| 0.5 * (a[k] + b[k])))
        .collect();
    assert!(close(&averaged, &mean), "{averaged:?} vs {mean:?}");
    assert!(
        !close(&averaged, &tract_logits),
        "a phantom disc and its mirror image gave the same logits: {averaged:?}"
    );
}

#[test]
fn progressive_unfreezing_opens_deeper_stages_in_growing_steps() {
    let opened: Vec<usize> = (0..100)
        .map(|e| train::stages_open(Unfreeze::Progressive, e, 100))
        .collect();
    assert_eq!(opened[0], 0);
    assert_eq!(opened[99], 5);
    assert!(opened.windows(2).all(|w| w[1] >= w[0]));
    let lengths: Vec<usize> = (0..=5)
        .map(|s| opened.iter().filter(|&&o| o == s).count())
        .collect();
    assert!(
        lengths[1..5].windows(2).all(|w| w[1] >= w[0]),
        "{lengths:?}"
    );
    assert_eq!(train::stages_open(Unfreeze::All, 0, 100), 5);
    assert_eq!(
        (0..100)
            .map(|e| train::stages_open(Unfreeze::Top(2), e, 100))
            .collect::<std::collections::BTreeSet<_>>(),
        [2].into()
    );
}

/// Logits of a batch of ROIs as rows of four.
fn rows(t: burn::tensor::Tensor<2>) -> Vec<[f32; 4]> {
    let v = t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    v.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
}

#[test]
fn a_folded_model_unfolds_to_the_same_function_with_the_datas_statistics() {
    use endplate::model::file::{parse_proto, read_initializers};
    use endplate::model::storage::widen_stored_weights;
    let dir = tempfile::tempdir().unwrap();
    let manifest = phantom_set(dir.path(), 6);
    let data = Dataset::load(&[manifest], &RoiParams::default()).unwrap();
    let arch = Architecture::resnet18(4);
    let mut w = arch.random_weights(5);
    // Non-trivial BatchNorms, so that folding really changes the kernels.
    let mut state = 12345u64;
    let mut uniform = |lo: f32, hi: f32| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (hi - lo) * ((state >> 40) as f32 / (1u64 << 24) as f32)
    };
    for c in arch.conv_bns() {
        for (f, lo, hi) in [
            ("weight", 0.5, 1.5),
            ("bias", -0.2, 0.2),
            ("running_mean", -0.1, 0.1),
            ("running_var", 0.5, 2.0),
        ] {
            for v in &mut w.get_mut(&format!("{}.{f}", c.bn)).unwrap().data {
                *v = uniform(lo, hi);
            }
        }
    }
    let card = endplate::model::card::ModelCard::untrained("folded", 5);
    let bytes = write_model(&arch, &w, &card, BatchNorm::Fold).unwrap();
    let folded = read_initializers(
        "f",
        &widen_stored_weights(parse_proto("f", &bytes).unwrap()),
    )
    .unwrap();
    assert!(
        arch.check(&folded).is_err(),
        "a folded file has no BatchNorm"
    );
    let unfolded = train::unfold_for_training(&folded, &arch, &data)
        .unwrap()
        .expect("a folded ResNet18");

    // Eval mode: exactly the file's function, as tract runs it.
    let device = burn::tensor::Device::flex();
    let idx: Vec<usize> = (0..data.rois.len()).collect();
    let p = RoiParams::default();
    let net = ResNet18::from_weights(&arch, &unfolded, &device).unwrap();
    let eval = train::predict(&net, &data, &idx, &p, false, &device);
    let input = endplate::disc::roi::network_input(data.rois.iter(), &p);
    let tract = Classifier::from_bytes("folded", &bytes)
        .unwrap()
        .logits(input.clone(), idx.len())
        .unwrap();
    let scale = tract.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
    for (b, t) in eval.iter().zip(&tract) {
        for k in 0..4 {
            assert!(
                (b[k] - t[k]).abs() <= 1e-3 * scale.max(1.0),
                "{b:?} vs {t:?}"
            );
        }
    }

    // Training mode on the discs the statistics came from: batch statistics replace the
    // running ones, and the function barely moves; without the measured statistics it does.
    let ad = device.clone().autodiff();
    let x = || {
        burn::tensor::Tensor::<4>::from_data(
            burn::tensor::TensorData::new(input.clone(), [idx.len(), 3, 128, 128]),
            &ad,
        )
    };
    let gap = |weights: &endplate::model::resnet::Weights| {
        let logits = rows(
            ResNet18::from_weights(&arch, weights, &ad)
                .unwrap()
                .forward(x()),
        );
        logits
            .iter()
            .zip(&eval)
            .flat_map(|(a, b)| (0..4).map(move |k| (a[k] - b[k]).abs()))
            .fold(0f32, f32::max)
    };
    let raw = endplate::model::resnet::unfold_batchnorm(&folded, &arch).unwrap();
    let (with_stats, without) = (gap(&unfolded), gap(&raw));
    assert!(
        with_stats < 0.05 * scale.max(1.0) && with_stats * 10.0 < without,
        "training-mode drift {with_stats} with measured statistics, {without} without (scale {scale})"
    );
}

#[test]
fn corner_jitter_cuts_nearby_seeded_copies_that_training_draws() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = phantom_set(dir.path(), 2);
    let p = RoiParams::default();
    let jitter = train::CornerJitter {
        fraction: 0.03,
        copies: 3,
        seed: 5,
    };
    let plain = Dataset::load(std::slice::from_ref(&manifest), &p).unwrap();
    assert!(plain.variants.is_empty());
    let a = Dataset::load_jittered(std::slice::from_ref(&manifest), &p, Some(jitter)).unwrap();
    let b = Dataset::load_jittered(std::slice::from_ref(&manifest), &p, Some(jitter)).unwrap();
    assert_eq!(a.rois, plain.rois, "the discs' own ROIs are untouched");
    assert_eq!(a.variants.len(), 10);
    let diff = |x: &endplate::Roi, y: &endplate::Roi| {
        x.pixels
            .iter()
            .zip(&y.pixels)
            .map(|(u, v)| (u - v).abs() as f64)
            .sum::<f64>()
            / x.pixels.len() as f64
    };
    let (mut moved, mut largest) = (0, 0.0f64);
    for (i, v) in a.variants.iter().enumerate() {
        assert_eq!(v.len(), 3);
        assert_eq!(v, &b.variants[i], "seeded: the same copies every load");
        for roi in v {
            let d = diff(roi, &a.rois[i]);
            moved += (d > 1e-4) as usize;
            largest = largest.max(d);
        }
    }
    // Every copy moved, none beyond a near neighbour of its disc (ROI values are in [0, 1]).
    assert_eq!(moved, 30, "every copy differs from its disc's ROI");
    assert!(largest < 0.15, "mean pixel change {largest}");
    let other = Dataset::load_jittered(
        std::slice::from_ref(&manifest),
        &p,
        Some(train::CornerJitter { seed: 6, ..jitter }),
    )
    .unwrap();
    assert_ne!(other.variants, a.variants, "another seed, other copies");
    // Training draws the disc's own ROI and each copy.
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(1);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let r = a.draw_roi(0, &mut rng);
        let k = if *r == a.rois[0] {
            0
        } else {
            1 + a.variants[0].iter().position(|v| v == r).unwrap()
        };
        seen.insert(k);
    }
    assert_eq!(seen.len(), 4);
}

#[test]
fn the_library_refuses_shares_that_do_not_match_its_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = phantom_set(dir.path(), 2);
    let data = Dataset::load(std::slice::from_ref(&manifest), &RoiParams::default()).unwrap();
    let arch = Architecture::resnet18(4);
    let config = TrainConfig {
        epochs: 1,
        source_shares: vec![3.0, 1.0],
        ..TrainConfig::default()
    };
    let Err(e) = train::train(
        &data,
        config,
        arch.random_weights(3),
        &dir.path().join("ckpt"),
        false,
        &mut Quiet(Vec::new()),
    ) else {
        panic!("two shares for one manifest were taken");
    };
    assert!(
        e.to_string()
            .contains("2 source shares for 1 manifests; give one per manifest"),
        "{e}"
    );
}

/// `phantom_set`'s manifest with an extra 0/1 column `dark` (1 for Schmorl's nodes), empty for
/// every third disc.
fn with_dark_column(manifest: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(manifest).unwrap();
    let rows = endplate::manifest::parse("manifest.csv", &text).unwrap();
    let extra: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let schmorl = r.label == Some(endplate::Class::Schmorl.into());
            vec![if i % 3 == 2 {
                String::new()
            } else {
                (schmorl as u8).to_string()
            }]
        })
        .collect();
    std::fs::write(
        manifest,
        endplate::manifest::write(&rows, &["dark"], &extra),
    )
    .unwrap();
    extra.iter().filter(|e| !e[0].is_empty()).count()
}

#[test]
fn auxiliary_columns_are_read_checked_and_named_when_wrong() {
    use endplate::train::dataset::auxiliary_targets;
    let dir = tempfile::tempdir().unwrap();
    let manifest = phantom_set(&dir.path().join("a"), 2);
    let known = with_dark_column(&manifest);
    let plain = phantom_set(&dir.path().join("b"), 1);
    let both = [manifest.clone(), plain.clone()];
    let t = auxiliary_targets(&both, &["DARK".into()]).unwrap();
    // One entry per labelled disc of both manifests; the one without the column knows none.
    assert_eq!(t.len(), 15);
    assert_eq!(t.iter().filter(|v| v[0].is_some()).count(), known);
    assert!(t[10..].iter().all(|v| v[0].is_none()));
    assert_eq!(t[2][0], None);

    let e = auxiliary_targets(&both, &["drak".into()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--auxiliary drak: no manifest of this run")
            && e.contains("has a column `drak`"),
        "{e}"
    );
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[3] = format!("{}2", lines[3].trim_end_matches(|c: char| c != ','));
    std::fs::write(&manifest, lines.join("\n")).unwrap();
    let e = auxiliary_targets(&both, &["dark".into()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("row 4") && e.contains("dark") && e.contains("`2` is not 0, 1 or a probability"),
        "{e}"
    );
}

/// One epoch, batch 8, everything learning: the runs the tests below compare.
fn brief() -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch: 8,
        seed: 3,
        unfreeze: Unfreeze::All,
        synthetic: true,
        ..TrainConfig::default()
    }
}

/// Train from the same random weights each time, checkpoints in `dir`.
fn train_briefly(
    data: &Dataset,
    config: TrainConfig,
    dir: &std::path::Path,
) -> endplate::Result<train::Trained> {
    let weights = Architecture::resnet18(4).random_weights(3);
    train::train(data, config, weights, dir, false, &mut Quiet(Vec::new()))
}

#[test]
fn auxiliary_targets_change_what_the_backbone_learns_and_the_model_keeps_four_classes() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = phantom_set(dir.path(), 3);
    let known = with_dark_column(&manifest);
    let mut data = Dataset::load(std::slice::from_ref(&manifest), &RoiParams::default()).unwrap();
    let arch = Architecture::resnet18(4);
    let base = brief();
    let run = |data: &Dataset, config: TrainConfig, name: &str| {
        train_briefly(data, config, &dir.path().join(name))
    };
    let plain = run(&data, base.clone(), "plain").unwrap();
    let aux = TrainConfig {
        auxiliary: vec!["dark".into()],
        ..base.clone()
    };
    // Named columns without their targets loaded: refused, not trained on nothing.
    let e = run(&data, aux.clone(), "none").err().unwrap().to_string();
    assert!(
        e.contains("auxiliary columns [\"dark\"]") && e.contains("auxiliary_targets"),
        "{e}"
    );

    data.auxiliary =
        train::dataset::auxiliary_targets(std::slice::from_ref(&manifest), &aux.auxiliary).unwrap();
    // Weight 0: the extra output gets no gradient and the backbone learns exactly as without it.
    let zero = run(
        &data,
        TrainConfig {
            auxiliary_weight: 0.0,
            ..aux.clone()
        },
        "zero",
    )
    .unwrap();
    assert_eq!(zero.weights, plain.weights);
    let learnt = run(&data, aux, "aux").unwrap();
    assert_ne!(
        learnt.weights["layer1.0.conv1.weight"],
        plain.weights["layer1.0.conv1.weight"]
    );
    // The model written keeps the four classes and the card says what was learnt beside them.
    assert_eq!(learnt.weights["fc.weight"].shape, vec![4, 512]);
    let a = &learnt.card.training.details["auxiliary"];
    assert_eq!(a["columns"], serde_json::json!(["dark"]));
    // Counted over the discs it trained on, not the validation ones.
    let trained_known = learnt
        .state
        .train
        .iter()
        .filter(|&&i| data.auxiliary[i][0].is_some())
        .count();
    assert!(trained_known < known);
    assert_eq!(
        a["known_training_discs"],
        serde_json::json!([trained_known])
    );
    assert_eq!(a["weight"], serde_json::json!(0.5));
    assert!(plain.card.training.details["auxiliary"].is_null());
    let bytes = write_model(&arch, &learnt.weights, &learnt.card, BatchNorm::Fold).unwrap();
    let model = Classifier::from_bytes("aux.onnx", &bytes).unwrap();
    let roi = &data.rois[0];
    assert_eq!(model.classify(std::slice::from_ref(roi)).unwrap().len(), 1);
}

#[test]
fn zoom_gamma_and_contrast_change_what_is_learnt_and_the_card_records_them() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = phantom_set(dir.path(), 2);
    let data = Dataset::load(std::slice::from_ref(&manifest), &RoiParams::default()).unwrap();
    let base = brief();
    let run = |config: TrainConfig, name: &str| {
        train_briefly(&data, config, &dir.path().join(name)).unwrap()
    };
    let plain = run(base.clone(), "plain");
    let toned = run(
        TrainConfig {
            augment: train::augment::Augment {
                max_scale: 0.1,
                max_gamma: 0.3,
                max_contrast: 0.2,
                ..Default::default()
            },
            ..base
        },
        "toned",
    );
    assert_ne!(
        toned.weights["layer1.0.conv1.weight"],
        plain.weights["layer1.0.conv1.weight"]
    );
    let a = &toned.card.training.details["augment"];
    assert_eq!(a["max_gamma"], serde_json::json!(0.3));
    assert_eq!(a["max_scale"], serde_json::json!(0.1));
    assert_eq!(
        plain.card.training.details["augment"]["max_contrast"],
        serde_json::json!(0.0)
    );
}
