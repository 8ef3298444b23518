//! Running a model file with tract: load and validate once, optimise once for one disc, then
//! classify any number of discs per call by running that plan once per disc. A plan for a fixed
//! batch of one beats a symbolic-batch plan at every batch size measured (native, one thread:
//! 19 ms per disc against 25 at batch 1 and 28 at batch 5), because tract picks its kernels for
//! known shapes and one disc's activations stay in cache.

use super::card::ModelCard;
use super::card::{FEATURES_NAME, INPUT_NAME, INPUT_SIZE, OUTPUT_NAME};
use super::file;
use crate::class::Class;
use crate::disc::roi::Roi;
use crate::error::{Error, Result};
use std::sync::Arc;
use tract_onnx::prelude::*;

/// Values of one `[3, 128, 128]` network input.
const PER_VIEW: usize = 3 * INPUT_SIZE * INPUT_SIZE;

/// Use `n` threads for the matrix products of every later run (native only; the browser runs
/// single-threaded). One thread is tract's default.
#[cfg(not(target_arch = "wasm32"))]
pub fn set_threads(n: usize) {
    use tract_linalg::multithread::{set_default_executor, Executor};
    set_default_executor(if n <= 1 {
        Executor::SingleThread
    } else {
        Executor::multithread(n)
    });
}

/// A flat `[n * 4]` output as one row of four logits per disc.
pub fn rows_of_four(flat: &[f32]) -> Vec<[f32; 4]> {
    flat.chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect()
}

/// Network input (`[.., width]` rows, any number of planes) mirrored left to right: what the
/// card's `mirror_average` runs next to each disc's own input.
pub fn mirrored(input: &[f32], width: usize) -> Vec<f32> {
    input
        .chunks_exact(width)
        .flat_map(|row| row.iter().rev().copied())
        .collect()
}

/// One disc's answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    pub class: Class,
    /// Calibrated probabilities in class order.
    pub probabilities: [f32; 4],
    /// Raw network outputs in class order.
    pub logits: [f32; 4],
}

/// A loaded, validated and optimised model.
pub struct Classifier {
    card: ModelCard,
    plan: Arc<TypedRunnableModel>,
    /// Width of the pooled `features` output (the plan's second output), when the file has one.
    features: Option<usize>,
    /// The file's name, for messages.
    source: String,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("card", &self.card.name)
            .finish_non_exhaustive()
    }
}

/// Check a model's one input and its output by name, load it in tract for one item of the given
/// input shape, check the output shape (`expected`, described for the message), and optimise.
/// The classifier and the detector share it, so both refuse a foreign graph the same way.
/// `extra` names an optional second output (the classifier's pooled features): when the file has
/// it, the plan returns it second, and its width (for one item, `[1, width]`) comes back.
pub(super) fn runnable(
    source_name: &str,
    proto: tract_onnx::pb::ModelProto,
    (input, shape): (&str, [usize; 4]),
    (output, expected, described): (&str, &[usize], &str),
    extra: Option<&str>,
) -> Result<(Arc<TypedRunnableModel>, Option<usize>)> {
    let bad = |reason: String| Error::model(source_name, reason);
    let graph = proto.graph.as_ref().expect("parse_proto checked the graph");
    let inputs: Vec<&str> = graph
        .input
        .iter()
        .map(|i| i.name.as_str())
        .filter(|n| !graph.initializer.iter().any(|t| t.name == *n))
        .collect();
    if inputs != [input] {
        return Err(bad(format!(
            "expected one input named `{input}`, found {inputs:?}"
        )));
    }
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let with_extra = match (extra, &outputs[..]) {
        (_, [o]) if *o == output => false,
        (Some(x), [o, e]) if *o == output && *e == x => true,
        (Some(x), _) => {
            return Err(bad(format!(
                "expected the output `{output}`, optionally followed by `{x}`, found {outputs:?}"
            )))
        }
        (None, _) => {
            return Err(bad(format!(
                "expected one output named `{output}`, found {outputs:?}"
            )))
        }
    };
    // tract copies the weights out of the protobuf; dropping it here, before optimisation
    // makes more copies, keeps the page's wasm memory (which never shrinks) 40 MB smaller.
    let model = tract_onnx::onnx()
        .model_for_proto_model(&super::storage::widen_stored_weights(proto))
        .map_err(|e| bad(format!("tract cannot load the graph: {e}")))?;
    let [_, c, h, w] = shape;
    let typed = model
        .with_input_fact(0, f32::fact(shape).into())
        .and_then(|m| m.into_typed())
        .map_err(|e| {
            bad(format!(
                "the graph does not accept input [N, {c}, {h}, {w}]: {e}"
            ))
        })?;
    let out_fact = typed.output_fact(0).map_err(|e| bad(e.to_string()))?;
    let want: TVec<TDim> = expected.iter().map(|&d| d.into()).collect();
    if out_fact.shape.to_tvec() != want || out_fact.datum_type != f32::datum_type() {
        return Err(bad(format!(
            "output `{output}` is {:?} {:?} for one input, expected {described}",
            out_fact.datum_type, out_fact.shape
        )));
    }
    let width = if with_extra {
        let fact = typed.output_fact(1).map_err(|e| bad(e.to_string()))?;
        match fact.shape.as_concrete() {
            Some(&[1, w]) if fact.datum_type == f32::datum_type() => Some(w),
            _ => {
                return Err(bad(format!(
                    "output `{}` is {:?} {:?} for one input, expected float32 [N, width]",
                    extra.unwrap_or_default(),
                    fact.datum_type,
                    fact.shape
                )))
            }
        }
    } else {
        None
    };
    let plan = typed
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| bad(format!("tract cannot optimise the graph: {e}")))?;
    Ok((plan, width))
}

impl Classifier {
    /// Parse, validate (card, input and output shapes) and optimise a model file.
    pub fn from_bytes(source_name: &str, bytes: &[u8]) -> Result<Classifier> {
        let proto = file::parse_proto(source_name, bytes)?;
        let card = file::read_card(source_name, &proto)?;
        let s = INPUT_SIZE;
        let (plan, features) = runnable(
            source_name,
            proto,
            (INPUT_NAME, [1, 3, s, s]),
            (OUTPUT_NAME, &[1, 4], "float32 [N, 4] (one logit per class)"),
            Some(FEATURES_NAME),
        )?;
        Ok(Classifier {
            card,
            plan,
            features,
            source: source_name.to_string(),
        })
    }

    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The width of the pooled features output, or `None` for a file without it.
    pub fn features_width(&self) -> Option<usize> {
        self.features
    }

    /// Network inputs per disc: its own ROI and the moved copies its card asks for
    /// (`preprocessing.moved_corners`), each `[3, 128, 128]`.
    fn views(&self) -> usize {
        self.card.preprocessing.views_per_disc()
    }

    /// The number of discs in `input`, or an error saying what a disc's input is and where it
    /// comes from.
    fn discs_in(&self, input: &[f32]) -> Result<usize> {
        let per = self.views() * PER_VIEW;
        if input.len() % per != 0 {
            return Err(Error::Inference(format!(
                "{} input values are not a whole number of discs of {} x 3 x {INPUT_SIZE} x {INPUT_SIZE} \
                 (this model's card asks for {} view(s) per disc): make the input with this model's \
                 card (network_input of ROIs cut with its preprocessing), not another model's",
                input.len(),
                self.views(),
                self.views()
            )));
        }
        Ok(input.len() / per)
    }

    /// Run the plan on every view of each disc of `input` (`views` inputs per disc: its own ROI
    /// and its moved copies, each also mirrored where the card asks for the mirror image's
    /// average) and collect output `k` per disc, averaged over the runs, flattened.
    fn run_each(&self, input: &[f32], n: usize, k: usize, views: usize) -> Result<Vec<f32>> {
        let per = views * PER_VIEW;
        if input.len() != n * per {
            return Err(Error::Inference(format!(
                "{} values for {n} discs, expected {}",
                input.len(),
                n * per
            )));
        }
        let mut flat = Vec::new();
        for disc in input.chunks_exact(per) {
            let mut runs = Vec::with_capacity(2 * views);
            for view in disc.chunks_exact(PER_VIEW) {
                runs.push(self.run_one(view, k)?);
                if self.card.mirror_average {
                    runs.push(self.run_one(&mirrored(view, INPUT_SIZE), k)?);
                }
            }
            let mean = |j: usize| runs.iter().map(|r| r[j]).sum::<f32>() / runs.len() as f32;
            flat.extend((0..runs[0].len()).map(mean));
        }
        Ok(flat)
    }

    /// Output `k` of one run on one disc's `[1, 3, 128, 128]` input.
    fn run_one(&self, disc: &[f32], k: usize) -> Result<Vec<f32>> {
        let tensor = Tensor::from_shape(&[1, 3, INPUT_SIZE, INPUT_SIZE], disc)
            .map_err(|e| Error::Inference(e.to_string()))?;
        let out = self
            .plan
            .run(tvec!(tensor.into()))
            .map_err(|e| Error::Inference(e.to_string()))?;
        let view = out[k]
            .to_plain_array_view::<f32>()
            .map_err(|e| Error::Inference(e.to_string()))?;
        Ok(view.iter().copied().collect())
    }

    /// Raw logits for `n` discs laid out as `[n * views, 3, 128, 128]` (each disc's own ROI, then
    /// the moved copies its card asks for; `network_input` lays them out so).
    pub fn logits(&self, input: Vec<f32>, n: usize) -> Result<Vec<[f32; 4]>> {
        Ok(rows_of_four(&self.run_each(&input, n, 0, self.views())?))
    }

    /// Raw logits of one view per disc (`[n, 3, 128, 128]`), without the moved copies the card
    /// may ask for: what an occlusion map explains, the disc's own ROI.
    pub fn logits_of_own_views(&self, input: Vec<f32>, n: usize) -> Result<Vec<[f32; 4]>> {
        Ok(rows_of_four(&self.run_each(&input, n, 0, 1)?))
    }

    /// The pooled features (the last layer's input) of discs already turned into network input,
    /// one row per disc; an error naming the fix for a file without the `features` output.
    pub fn features_input(&self, input: &[f32]) -> Result<Vec<Vec<f32>>> {
        let width = self
            .features
            .ok_or_else(|| super::last_layer::no_features(&self.source))?;
        let flat = self.run_each(input, self.discs_in(input)?, 1, self.views())?;
        Ok(flat.chunks_exact(width).map(|c| c.to_vec()).collect())
    }

    /// The pooled features of preprocessed discs.
    pub fn features(&self, rois: &[Roi]) -> Result<Vec<Vec<f32>>> {
        let p = &self.card.preprocessing;
        self.features_input(&crate::disc::roi::network_input(rois, p))
    }

    /// Classify preprocessed discs in one call.
    pub fn classify(&self, rois: &[Roi]) -> Result<Vec<Prediction>> {
        let p = &self.card.preprocessing;
        self.classify_input(crate::disc::roi::network_input(rois, p))
    }

    /// Classify discs already turned into network input (`[n * views, 3, 128, 128]` flattened,
    /// as [`crate::disc::roi::network_input`] makes it): lets the page share one slice's discs
    /// among workers that hold only the model.
    pub fn classify_input(&self, input: Vec<f32>) -> Result<Vec<Prediction>> {
        let n = self.discs_in(&input)?;
        let logits = self.logits(input, n)?;
        Ok(logits.into_iter().map(|l| self.predict(l)).collect())
    }

    /// Calibrated prediction from one disc's logits.
    pub fn predict(&self, logits: [f32; 4]) -> Prediction {
        let probabilities = self.card.calibration.probabilities(&logits);
        Prediction {
            class: Class::argmax(&probabilities),
            probabilities,
            logits,
        }
    }
}
