//! The disc detector: its card, its ONNX file and running it with tract.
//!
//! A slice is seen twice. The first view is the whole slice letterboxed into the network's
//! square input; it finds the spine. The second is a crop around the discs found (with room for
//! the sacrum below), enlarged into the same input, so corners are placed at up to three times
//! the resolution; its discs replace the first view's when it finds at least as many lumbar
//! ones. Training draws views at both scales, so one network serves both.

use super::card::{Training, CARD_VERSION};
use super::detector_net::{DetectorArch, CORNER_MAPS, MAPS, STRIDE};
use super::file::GraphBuilder;
use super::file::{self, BatchNorm};
use super::onnx::{model_bytes, node, value_info};
use super::resnet::{WeightTensor, Weights};
use crate::disc::detection::{
    add_missed_lowest_disc, candidates, corner_view_groups, mean_corners, name_levels, Candidate,
    DecodeParams, DetectedDisc, Maps,
};
use crate::disc::geometry::Point;
use crate::error::{Error, Result};
use crate::image::contrast::Stretch;
use crate::image::slice::Slice;
use crate::image::warp::{warp, Affine};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tract_onnx::pb;
use tract_onnx::prelude::*;

pub const DETECTOR_KIND: &str = "detector";
pub const DETECTOR_INPUT: &str = "input";
pub const DETECTOR_OUTPUT: &str = "maps";
/// The optional second output: the logit of "this image is upside down", one per image
/// ([`super::orientation`] fits it).
pub const ORIENTATION_OUTPUT: &str = "upside_down";

/// Every node and tensor of a joined corner network ([`super::corner_network`]) starts with
/// this.
pub const CORNER_NET_PREFIX: &str = "corner_net.";
/// The joined network's maps, laid out as `maps`.
pub const CORNER_NET_OUTPUT: &str = "corner_net.maps";

/// How a slice becomes the detector's input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetectorInput {
    /// Side of the square input (pixels); one channel.
    pub size: usize,
    /// Contrast stretch over the whole slice, as for the classifier's ROI.
    pub stretch_low: f64,
    pub stretch_high: f64,
    /// Normalisation after the stretch: (value - mean) / std.
    pub mean: f32,
    pub std: f32,
    /// Stretched value outside the slice (black, as the air around a real spine).
    pub pad_value: f32,
}

impl Default for DetectorInput {
    fn default() -> Self {
        DetectorInput {
            size: 256,
            stretch_low: 0.01,
            stretch_high: 0.99,
            mean: 0.35,
            std: 0.3,
            pad_value: 0.0,
        }
    }
}

/// The detector's card (`kind: "detector"`), under the same `endplate.card` key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorCard {
    pub format_version: u32,
    pub kind: String,
    pub name: String,
    pub input: DetectorInput,
    pub decode: DecodeParams,
    pub training: Training,
    /// Validation figures in the shape of `evaluate-detector --json`, where measured.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metrics: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// How the orientation layer was fitted and checked (`endplate fit-orientation`), for a
    /// file with the `upside_down` output.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub orientation: serde_json::Value,
    /// Where the network of the corner views came from (its card's name, training and
    /// metrics), for a file with a joined corner network ([`super::corner_network`]).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub corner_network: serde_json::Value,
}

impl DetectorCard {
    pub fn new(name: &str, training: Training) -> DetectorCard {
        DetectorCard {
            format_version: CARD_VERSION,
            kind: DETECTOR_KIND.into(),
            name: name.into(),
            input: DetectorInput::default(),
            decode: DecodeParams::default(),
            training,
            metrics: serde_json::Value::Null,
            warning: None,
            orientation: serde_json::Value::Null,
            corner_network: serde_json::Value::Null,
        }
    }

    /// Parse and validate, refusing a classifier's card with a message that says so.
    pub fn from_json(source_name: &str, json: &str) -> Result<DetectorCard> {
        let value = super::card::card_value(source_name, json, DETECTOR_KIND)?;
        let card: DetectorCard = serde_json::from_value(value)
            .map_err(|e| Error::model(source_name, format!("detector card field error: {e}")))?;
        let i = &card.input;
        if i.size < 64 || i.size % 32 != 0 || i.size > 1024 {
            return Err(Error::model(
                source_name,
                format!(
                    "detector input size {} must be a multiple of 32 in 64..=1024",
                    i.size
                ),
            ));
        }
        if i.std.is_nan()
            || i.std <= 0.0
            || i.stretch_low.is_nan()
            || i.stretch_low >= i.stretch_high
        {
            return Err(Error::model(
                source_name,
                "detector preprocessing has a zero std or low >= high stretch",
            ));
        }
        Ok(card)
    }

    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "kind": self.kind,
            "format_version": self.format_version,
            "input_size": self.input.size,
            "synthetic": self.training.synthetic,
            "data": self.training.data_description,
            "code_version": self.training.code_version,
            "warning": self.warning,
        })
    }
}

/// The slice's values stretched to [0, 1] (the detector's first step; computed once per slice
/// and shared by both views).
pub fn stretched(slice: &Slice, input: &DetectorInput) -> Vec<f32> {
    let s = Stretch::of(slice, input.stretch_low, input.stretch_high);
    slice.pixels.iter().map(|&v| s.apply(v)).collect()
}

/// The network input for one view: `to_slice` maps input pixels to slice pixels.
pub fn view_input(
    values: &[f32],
    width: usize,
    height: usize,
    to_slice: &Affine,
    input: &DetectorInput,
) -> Vec<f32> {
    let n = input.size;
    let mut v = warp(values, width, height, to_slice, n, n, input.pad_value);
    v.iter_mut()
        .for_each(|x| *x = (*x - input.mean) / input.std);
    v
}

/// Encode the detector with `weights` and `card` as ONNX bytes.
pub fn write_detector(
    arch: &DetectorArch,
    weights: &Weights,
    card: &DetectorCard,
    batchnorm: BatchNorm,
) -> Result<Vec<u8>> {
    arch.check(weights)?;
    if arch.corner_maps() != card.decode.corner_maps {
        return Err(Error::Invalid(format!(
            "the detector's card says decode.corner_maps = {} but its network has {} output maps; \
             build the network with DetectorArch::with_corner_maps(card.decode.corner_maps)",
            card.decode.corner_maps, arch.maps
        )));
    }
    let mut g = GraphBuilder::new(weights, batchnorm);
    let mut skips = Vec::new();
    let mut x = DETECTOR_INPUT.to_string();
    for (down, same) in &arch.encoder {
        x = g.conv_bn(down, &x, true);
        if let Some(s) = same {
            x = g.conv_bn(s, &x, true);
        }
        skips.push(x.clone());
    }
    g.init(
        "upsample.scales",
        WeightTensor {
            shape: vec![4],
            data: vec![1.0, 1.0, 2.0, 2.0],
        },
    );
    for (k, step) in arch.top_down.iter().enumerate() {
        let p = g.conv_bn(&step.project, &x, false);
        let up = format!("{}.up", step.project.conv);
        g.push(node(
            "Resize",
            &up,
            &[&p, "", "upsample.scales"],
            &up,
            vec![
                super::onnx::attr_string("mode", "nearest"),
                super::onnx::attr_string("coordinate_transformation_mode", "asymmetric"),
                super::onnx::attr_string("nearest_mode", "floor"),
            ],
        ));
        let sum = format!("{}.sum", step.project.conv);
        let skip = skips[3 - k].clone();
        g.push(node("Add", &sum, &[&up, &skip], &sum, vec![]));
        x = g.conv_bn(&step.smooth, &sum, true);
    }
    x = g.conv_bn(&arch.head, &x, true);
    g.init_named("out.weight");
    g.init_named("out.bias");
    g.push(node(
        "Conv",
        "out",
        &[&x, "out.weight", "out.bias"],
        DETECTOR_OUTPUT,
        vec![super::onnx::attr_ints("kernel_shape", &[1, 1])],
    ));
    let s = card.input.size as i64;
    let cells = s / STRIDE as i64;
    let (nodes, initializer) = g.finish();
    let graph = pb::GraphProto {
        name: "endplate-detector".into(),
        node: nodes,
        initializer,
        input: vec![value_info(
            DETECTOR_INPUT,
            &[None, Some(1), Some(s), Some(s)],
        )],
        output: vec![value_info(
            DETECTOR_OUTPUT,
            &[None, Some(arch.maps as i64), Some(cells), Some(cells)],
        )],
        ..Default::default()
    };
    model_bytes(graph, card)
}

/// The rule that turns a slice: its whole-slice view reads as upside down (`stored` logit
/// above 0) and more so than the same view turned top to bottom (`turned`). The second run is
/// needed only when the first says so, and comparing the two is far steadier than the first
/// alone: an upright slice that merely looks odd reads odd both ways up.
pub fn upside_down(stored: f32, turned: f32) -> bool {
    stored > 0.0 && stored > turned
}

/// Check and optimise a detector file's graph for its card: one input, the maps as first output,
/// and optionally `extra` second (its width comes back).
pub(super) fn detector_plan(
    source_name: &str,
    proto: pb::ModelProto,
    card: &DetectorCard,
    extra: &str,
) -> Result<(Arc<TypedRunnableModel>, Option<usize>)> {
    maps_plan(source_name, proto, card, DETECTOR_OUTPUT, Some(extra))
}

/// A plan whose first output, `output`, holds the maps the card describes: the file's own
/// network's (`maps`) or a joined corner network's ([`CORNER_NET_OUTPUT`]).
fn maps_plan(
    source_name: &str,
    proto: pb::ModelProto,
    card: &DetectorCard,
    output: &str,
    extra: Option<&str>,
) -> Result<(Arc<TypedRunnableModel>, Option<usize>)> {
    let (s, g) = (card.input.size, card.input.size / STRIDE);
    let maps = super::detector_net::output_maps(card.decode.corner_maps);
    let what = if card.decode.corner_maps {
        "centre, L5S1, eight offset maps and six corner maps, as its card's decode.corner_maps says"
    } else {
        "centre, L5S1 and eight offset maps"
    };
    super::inference::runnable(
        source_name,
        proto,
        (DETECTOR_INPUT, [1, 1, s, s]),
        (
            output,
            &[1, maps, g, g],
            &format!("float32 [N, {maps}, {g}, {g}] ({what})"),
        ),
        extra,
    )
}

/// The first view of a slice: its stretched values (the second view reuses them), the discs
/// found and the orientation logit.
struct FirstView {
    values: Vec<f32>,
    discs: Vec<DetectedDisc>,
    logit: Option<f32>,
}

/// The detector's input for the whole slice letterboxed, as its first view sees it: what the
/// orientation layer reads, and what another engine is given to run the same numbers.
pub fn whole_slice_input(slice: &Slice, input: &DetectorInput) -> Vec<f32> {
    let (w, h) = (slice.width, slice.height);
    view_input(
        &stretched(slice, input),
        w,
        h,
        &Affine::letterbox(w, h, input.size),
        input,
    )
}

/// A loaded, validated and optimised detector.
pub struct Detector {
    card: DetectorCard,
    plan: Arc<TypedRunnableModel>,
    /// The file has the `upside_down` output ([`super::orientation`]).
    orientation: bool,
    /// The joined network that runs the corner views, where the file has one
    /// ([`super::corner_network`]).
    corner_plan: Option<Arc<TypedRunnableModel>>,
}

/// What [`Detector::detect_oriented`] found: the discs in the stored slice's coordinates, and
/// whether the slice was stored upside down (its levels then counted from the sacrum at the
/// top, and its discs found on the slice turned upright).
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub discs: Vec<DetectedDisc>,
    pub upside_down: bool,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("card", &self.card.name)
            .finish_non_exhaustive()
    }
}

/// What one view found, before levels are named: candidates in slice coordinates.
fn view_candidates(
    maps: &[f32],
    input: &DetectorInput,
    decode: &DecodeParams,
    to_slice: &Affine,
) -> Vec<Candidate> {
    let g = input.size / STRIDE;
    let plane = g * g;
    let m = Maps {
        grid: g,
        stride: STRIDE as f64,
        center: &maps[..plane],
        l5s1: &maps[plane..2 * plane],
        offsets: &maps[2 * plane..MAPS * plane],
        corners: decode
            .corner_maps
            .then(|| &maps[MAPS * plane..(MAPS + CORNER_MAPS) * plane]),
    };
    candidates(&m, decode)
        .into_iter()
        .map(|c| {
            let to = |q: [Point; 4]| {
                q.map(|p| {
                    let (x, y) = to_slice.apply(p.x, p.y);
                    Point::new(x, y)
                })
            };
            Candidate {
                corners: to(c.corners),
                placed: c.placed.map(to),
                ..c
            }
        })
        .collect()
}

/// The discs found plus a margin, and room below for the sacrum, as `[x0, y0, x1, y1]` in
/// slice pixels; `None` for fewer than two discs.
pub fn disc_region(discs: &[DetectedDisc]) -> Option<[f64; 4]> {
    let pts: Vec<Point> = discs.iter().flat_map(|d| d.corners).collect();
    if discs.len() < 2 || pts.is_empty() {
        return None;
    }
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for p in &pts {
        x0 = x0.min(p.x);
        y0 = y0.min(p.y);
        x1 = x1.max(p.x);
        y1 = y1.max(p.y);
    }
    let w = discs
        .iter()
        .map(|d| (d.corners[1].x - d.corners[0].x).hypot(d.corners[1].y - d.corners[0].y))
        .fold(0.0, f64::max);
    Some([x0 - 1.2 * w, y0 - 1.0 * w, x1 + 1.2 * w, y1 + 1.6 * w])
}

/// The second view's region ([`disc_region`]); `None` when it would not be smaller than the
/// whole slice (nothing to gain).
pub fn refine_region(discs: &[DetectedDisc], width: usize, height: usize) -> Option<[f64; 4]> {
    let [x0, y0, x1, y1] = disc_region(discs)?;
    let side = (x1 - x0).max(y1 - y0);
    (side < 0.8 * width.max(height) as f64).then_some([x0, y0, x1, y1])
}

impl Detector {
    /// Parse, validate (card kind, input and output) and optimise a detector file.
    pub fn from_bytes(source_name: &str, bytes: &[u8]) -> Result<Detector> {
        let proto = file::parse_proto(source_name, bytes)?;
        let json = file::card_json(source_name, &proto)?;
        let card = DetectorCard::from_json(source_name, &json)?;
        let (proto, corners) = split_corner_network(proto);
        let corner_plan = match corners {
            Some(c) => Some(maps_plan(source_name, c, &card, CORNER_NET_OUTPUT, None)?.0),
            None => None,
        };
        let (plan, extra) = detector_plan(source_name, proto, &card, ORIENTATION_OUTPUT)?;
        if extra.is_some_and(|w| w != 1) {
            return Err(Error::model(
                source_name,
                format!(
                    "output `{}` must be one logit per image, [N, 1]",
                    ORIENTATION_OUTPUT
                ),
            ));
        }
        Ok(Detector {
            card,
            plan,
            orientation: extra.is_some(),
            corner_plan,
        })
    }

    /// Whether the file can tell a slice stored upside down ([`super::orientation`]).
    pub fn has_orientation(&self) -> bool {
        self.orientation
    }

    pub fn card(&self) -> &DetectorCard {
        &self.card
    }

    /// The raw maps for one prepared input (of the file's own network).
    pub fn maps(&self, input: Vec<f32>) -> Result<Vec<f32>> {
        Ok(self.run(input, Net::Levels)?.0)
    }

    /// Whether the file has a joined network for its corner views.
    pub fn has_corner_network(&self) -> bool {
        self.corner_plan.is_some()
    }

    /// The maps and, where the file has it, the upside-down logit of one prepared input; the
    /// corner views run the joined corner network where there is one.
    fn run(&self, input: Vec<f32>, net: Net) -> Result<(Vec<f32>, Option<f32>)> {
        let s = self.card.input.size;
        let t = Tensor::from_shape(&[1, 1, s, s], &input)
            .map_err(|e| Error::Inference(e.to_string()))?;
        let (plan, orientation) = match (&self.corner_plan, net) {
            (Some(c), Net::Corners) => (c, false),
            _ => (&self.plan, self.orientation),
        };
        let out = plan
            .run(tvec![t.into()])
            .map_err(|e| Error::Inference(e.to_string()))?;
        let flat = |k: usize| -> Result<Vec<f32>> {
            let v = out[k]
                .to_plain_array_view::<f32>()
                .map_err(|e| Error::Inference(e.to_string()))?;
            Ok(v.iter().copied().collect())
        };
        let logit = if orientation {
            flat(1)?.first().copied()
        } else {
            None
        };
        Ok((flat(0)?, logit))
    }

    /// Every disc of the slice, top to bottom, with levels where the sacrum was found; a slice
    /// stored upside down is detected upright (see [`Detector::detect_oriented`]).
    pub fn detect(&self, slice: &Slice) -> Result<Vec<DetectedDisc>> {
        Ok(self.detect_oriented(slice)?.discs)
    }

    /// As [`Detector::detect`], saying whether the slice was stored upside down. When the file
    /// has the orientation output and the whole-slice view reads as upside down, the slice is
    /// turned upright and detected there, and the discs come back in the stored slice's
    /// coordinates (SPEC order: the corners higher in the image first), top to bottom. Each
    /// view runs once: a slice that reads upside down but is kept goes on from its first view.
    pub fn detect_oriented(&self, slice: &Slice) -> Result<Detection> {
        let stored = self.first_view(slice)?;
        if let Some(logit) = stored.logit.filter(|&l| l > 0.0) {
            let upright = slice.flipped_vertically();
            let turned = self.first_view(&upright)?;
            if upside_down(logit, turned.logit.unwrap_or(f32::INFINITY)) {
                let mut discs: Vec<DetectedDisc> = self
                    .discs(&upright, turned)?
                    .iter()
                    .map(|d| d.flipped_vertically(slice.height))
                    .collect();
                discs.reverse();
                return Ok(Detection {
                    discs,
                    upside_down: true,
                });
            }
        }
        Ok(Detection {
            discs: self.discs(slice, stored)?,
            upside_down: false,
        })
    }

    /// The discs of one view (`to_slice` maps the view's input onto the slice) and the
    /// orientation logit, from the slice's stretched values.
    fn view(
        &self,
        values: &[f32],
        slice: &Slice,
        to_slice: &Affine,
        net: Net,
    ) -> Result<(Vec<DetectedDisc>, Option<f32>)> {
        let input = &self.card.input;
        let (maps, logit) = self.run(
            view_input(values, slice.width, slice.height, to_slice, input),
            net,
        )?;
        let discs = name_levels(
            view_candidates(&maps, input, &self.card.decode, to_slice),
            &self.card.decode,
        );
        Ok((discs, logit))
    }

    /// The whole slice letterboxed: its discs and orientation logit.
    fn first_view(&self, slice: &Slice) -> Result<FirstView> {
        let values = stretched(slice, &self.card.input);
        let whole = Affine::letterbox(slice.width, slice.height, self.card.input.size);
        let (discs, logit) = self.view(&values, slice, &whole, Net::Levels)?;
        Ok(FirstView {
            values,
            discs,
            logit,
        })
    }

    /// The discs of a slice from its first view: the second view's, then, where the card says
    /// so, the closer views ([`Detector::corner_views`]): the lowest disc added where the
    /// closer view of all lumbar discs finds one the chain missed ([`add_missed_lowest_disc`]),
    /// and each lumbar disc's corners averaged over the views.
    fn discs(&self, slice: &Slice, first: FirstView) -> Result<Vec<DetectedDisc>> {
        let mut discs = self.second_view(slice, &first)?;
        if self.card.decode.corner_views {
            let views = self.corner_views(&first.values, slice, &discs)?;
            for d in discs.iter_mut().filter(|d| d.lumbar_level().is_some()) {
                d.corners = mean_corners(d, &views);
            }
            if let Some((all, others)) = views.split_last() {
                // The added disc comes from the last view: averaged with the others only.
                if let Some(i) = add_missed_lowest_disc(&mut discs, all) {
                    discs[i].corners = mean_corners(&discs[i], others);
                }
            }
        }
        Ok(discs)
    }

    /// The crop around the discs the first view found, enlarged into the input, where that is
    /// smaller than the slice; whichever view names more lumbar discs is kept.
    fn second_view(&self, slice: &Slice, first: &FirstView) -> Result<Vec<DetectedDisc>> {
        let Some(region) = refine_region(&first.discs, slice.width, slice.height) else {
            return Ok(first.discs.clone());
        };
        let (second, _) = self.crop_view(&first.values, slice, region, Net::Levels)?;
        let lumbar = |d: &[DetectedDisc]| d.iter().filter(|x| x.lumbar_level().is_some()).count();
        Ok(if lumbar(&second) >= lumbar(&first.discs) {
            second
        } else {
            first.discs.clone()
        })
    }

    /// The discs of closer views of the lumbar spine ([`corner_view_groups`]), whatever their
    /// size against the slice: on a slice whose field of view is the lumbar spine (most of
    /// SPIDER's) the second view is not smaller than the slice and never runs, so without these
    /// the corners would come from the whole slice squeezed into the input. Their corners are
    /// used, and the last view's L5S1 only to add a lowest disc the first views missed.
    fn corner_views(
        &self,
        values: &[f32],
        slice: &Slice,
        discs: &[DetectedDisc],
    ) -> Result<Vec<Vec<DetectedDisc>>> {
        // The view of all lumbar discs (the last) may add a lowest disc to the chain, so the
        // network that names levels runs it; a joined corner network runs the halves.
        let groups = corner_view_groups(discs);
        let all = groups.len().saturating_sub(1);
        groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| disc_region(g).map(|r| (i, r)))
            .map(|(i, region)| {
                let net = if i == all { Net::Levels } else { Net::Corners };
                Ok(self.crop_view(values, slice, region, net)?.0)
            })
            .collect()
    }

    /// One view of `region` (`[x0, y0, x1, y1]` in slice pixels) enlarged into the input.
    fn crop_view(
        &self,
        values: &[f32],
        slice: &Slice,
        [x0, y0, x1, y1]: [f64; 4],
        net: Net,
    ) -> Result<(Vec<DetectedDisc>, Option<f32>)> {
        let crop = Affine::fit(x0, y0, x1, y1, self.card.input.size);
        self.view(values, slice, &crop, net)
    }
}

/// Which of a file's networks runs a view: its own finds the discs and their levels, a joined
/// corner network (where the file has one) places the corners of the corner views.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Net {
    Levels,
    Corners,
}

/// The file's own network (every output but [`CORNER_NET_OUTPUT`]) and, where it has one, the
/// joined corner network (its one output); each with only its own nodes and weights, so that
/// each runs alone.
pub fn split_corner_network(mut proto: pb::ModelProto) -> (pb::ModelProto, Option<pb::ModelProto>) {
    let joined = proto
        .graph
        .as_ref()
        .is_some_and(|g| g.output.iter().any(|o| o.name == CORNER_NET_OUTPUT));
    if !joined {
        return (proto, None);
    }
    let mut corners = proto.clone();
    let mine = |name: &str| name.starts_with(CORNER_NET_PREFIX);
    let graph = proto.graph.as_mut().expect("checked above");
    graph.node.retain(|n| !mine(&n.name));
    graph.initializer.retain(|t| !mine(&t.name));
    graph.output.retain(|o| o.name != CORNER_NET_OUTPUT);
    let g = corners.graph.as_mut().expect("cloned with its graph");
    g.node.retain(|n| mine(&n.name));
    g.initializer.retain(|t| mine(&t.name));
    g.output.retain(|o| o.name == CORNER_NET_OUTPUT);
    (proto, Some(corners))
}
