//! The browser API: one exported struct over the library, every method returning `Result` so a
//! bad file becomes a JavaScript exception instead of a dead wasm instance. The page's worker
//! owns one `Endplate`; the page itself never touches the network or the model. The primary
//! worker also holds the disc detector and proposes the discs of each slice it opens.
//!
//! Results and structured inputs cross the boundary as typed values (`serde-wasm-bindgen`, maps
//! as plain objects), pixels as typed arrays; a panic that still happens reports its message on
//! the console (`console_error_panic_hook`, set once at start) instead of "unreachable".
//!
//! The last stage, wasm only: may use every other module of the library (never `train`, which
//! the wasm build does not compile). The page's worker pool is in `www/engine.js`.

use crate::disc::detection::flip_corners;
use crate::disc::geometry::Point;
use crate::disc::roi::{Roi, RoiParams, RoiRect};
use crate::image::contrast::Stretch;
use crate::image::decode::{decode, DecodeOptions};
use crate::manifest::{self, Row};
use crate::model::card;
use crate::model::detector::{whole_slice_input, Detector};
use crate::phantom::{plan_subject, render, ClassMix};
use crate::study::archive::is_zip;
use crate::study::{Archive, Collector, Sources, Study};
use crate::{Class, Classifier, Label, Level, Slice};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wasm_bindgen::prelude::*;

/// Runs once when the module starts: panics report their message on the console.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

#[wasm_bindgen]
extern "C" {
    /// `performance.now()`: `std::time::Instant` panics on wasm32-unknown-unknown; the global
    /// `performance` exists in workers and pages alike.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

fn js(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn corners_from(flat: &[f64]) -> Result<Vec<[Point; 4]>, JsError> {
    if flat.is_empty() || flat.len() % 8 != 0 {
        return Err(js(format!(
            "corners come in groups of eight numbers (x1,y1,...,x4,y4); got {}",
            flat.len()
        )));
    }
    Ok(flat
        .chunks_exact(8)
        .map(|c| std::array::from_fn(|i| Point::new(c[2 * i], c[2 * i + 1])))
        .collect())
}

/// A Rust value as a JavaScript value: maps become plain objects, as the page expects.
fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(js)
}

/// One classified disc, as `classify` returns it.
#[derive(Serialize)]
struct PredictionOut {
    label: &'static str,
    display: &'static str,
    probabilities: BTreeMap<&'static str, f32>,
    logits: [f32; 4],
}

fn predictions_js(preds: &[crate::Prediction]) -> Result<JsValue, JsError> {
    let out: Vec<_> = preds
        .iter()
        .map(|p| PredictionOut {
            label: p.class.id(),
            display: p.class.display_name(),
            probabilities: Class::ALL
                .iter()
                .map(|c| (c.id(), p.probabilities[c.index()]))
                .collect(),
            logits: p.logits,
        })
        .collect();
    to_js(&out)
}

/// A model or detector file just loaded: its one-line summary and its card.
#[derive(Serialize)]
struct Loaded<'a, C: Serialize> {
    summary: serde_json::Value,
    card: &'a C,
}

/// The display window a slice opens with: the DICOM one, else the contrast stretch.
#[derive(Serialize)]
struct WindowOut {
    center: f64,
    width: f64,
    source: &'static str,
}

/// A slice just loaded: size, depth, pixel spacing (row, column, mm) and display window.
#[derive(Serialize)]
struct SliceInfo {
    width: usize,
    height: usize,
    bits: u16,
    spacing_mm: Option<(f64, f64)>,
    window: WindowOut,
}

/// A disc as the page hands it to `exportCsv`.
#[derive(Deserialize)]
struct DiscIn {
    #[serde(default)]
    level: Option<String>,
    corners: Vec<f64>,
    #[serde(default)]
    truth: Option<String>,
    #[serde(default)]
    prediction: Option<PredictionIn>,
}

#[derive(Deserialize)]
struct PredictionIn {
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    probabilities: BTreeMap<String, Option<f64>>,
}

/// A ground-truth disc of a phantom.
#[derive(Serialize)]
struct TruthOut {
    level: &'static str,
    label: &'static str,
    display: &'static str,
    severity: f64,
    corners: Vec<[f64; 2]>,
}

/// A teaching phantom just drawn: the slice's info and its true discs.
#[derive(Serialize)]
struct PhantomOut {
    info: SliceInfo,
    truth: Vec<TruthOut>,
}

/// A row read back from a manifest.
#[derive(Serialize)]
struct RowOut<'a> {
    image: &'a str,
    level: Option<&'static str>,
    label: Option<&'static str>,
    corners: Vec<f64>,
}

/// Where the page's exported slice came from, as it hands it to `exportCsv`: written into
/// every row, so an export says which file, series and slice its corners belong to and how
/// large a pixel is.
#[derive(Deserialize, Default)]
struct ExportContext {
    #[serde(default)]
    spacing_mm: Option<(f64, f64)>,
    #[serde(default)]
    series_uid: Option<String>,
    #[serde(default)]
    series_description: Option<String>,
    /// 0-based, in the series' order along its normal.
    #[serde(default)]
    slice_index: Option<usize>,
}

/// A study just gathered, with each series' mid-sagittal slice.
#[derive(Serialize)]
struct StudyOut<'a> {
    #[serde(flatten)]
    study: &'a Study,
    mid_slices: Vec<usize>,
}

#[wasm_bindgen]
pub struct Endplate {
    model: Option<Classifier>,
    detector: Option<Detector>,
    slice: Option<(Slice, Stretch)>,
    /// The slice turned upright, when the detector found it stored upside down: its discs'
    /// ROIs are cut from it, so each shows its disc the way up the classifier learnt.
    turned: Option<Slice>,
    /// The study being gathered (`studyAdd`) until `studyFinish`.
    collector: Option<Collector>,
    /// The zips of the open study, kept to read its slices from (the page keeps other files).
    sources: Sources,
}

impl Default for Endplate {
    fn default() -> Self {
        Self::new()
    }
}

#[wasm_bindgen]
impl Endplate {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Endplate {
        Endplate {
            model: None,
            detector: None,
            slice: None,
            turned: None,
            collector: None,
            sources: Sources::default(),
        }
    }

    /// Load a model file; on error the current model stays. Returns `{summary, card}`.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(&mut self, bytes: &[u8], name: &str) -> Result<JsValue, JsError> {
        let model = Classifier::from_bytes(name, bytes).map_err(js)?;
        let out = to_js(&Loaded {
            summary: card::summary(model.card()),
            card: model.card(),
        })?;
        self.model = Some(model);
        // The contrast stretch follows the model's card: refresh the cached one, so previews and
        // classification keep using one stretch computed once per slice and model.
        let p = self.params();
        if let Some((slice, stretch)) = self.slice.as_mut() {
            *stretch = Stretch::of(slice, p.stretch_low, p.stretch_high);
        }
        Ok(out)
    }

    /// Load a disc detector file (card `kind: "detector"`); on error the current detector, if
    /// any, stays. Returns `{summary, card}`.
    #[wasm_bindgen(js_name = loadDetector)]
    pub fn load_detector(&mut self, bytes: &[u8], name: &str) -> Result<JsValue, JsError> {
        let detector = Detector::from_bytes(name, bytes).map_err(js)?;
        let out = to_js(&Loaded {
            summary: detector.card().summary(),
            card: detector.card(),
        })?;
        self.detector = Some(detector);
        Ok(out)
    }

    fn detector(&self) -> Result<&Detector, JsError> {
        self.detector
            .as_ref()
            .ok_or_else(|| js("no disc detector loaded"))
    }

    /// Find the discs of the current slice. Returns `{"discs": [{"level", "score",
    /// "corners": [[x, y] x4]}], "lumbar": n, "upside_down": bool, "milliseconds": t,
    /// "warning": null | text}` (`warning`: what the file's orientation says is wrong): every
    /// disc found, top to bottom, corners in SPEC order on the slice as shown; `level` is `null`
    /// when no sacrum was found, and `lumbar` counts the discs L1L2-L5S1 (the ones the
    /// classifier takes). A slice found stored upside down keeps its corners where they are
    /// shown, and from then on its ROIs are cut from it turned upright.
    pub fn detect(&mut self) -> Result<JsValue, JsError> {
        let detector = self.detector()?;
        let (slice, _) = self.slice()?;
        let t0 = performance_now();
        let found = detector.detect_oriented(slice).map_err(js)?;
        let ms = performance_now() - t0;
        let lumbar = found
            .discs
            .iter()
            .filter(|d| d.lumbar_level().is_some())
            .count();
        let warning = crate::image::orientation::warning(slice.orientation);
        self.turned = found.upside_down.then(|| slice.flipped_vertically());
        #[derive(Serialize)]
        struct Detected<'a> {
            discs: &'a [crate::disc::detection::DetectedDisc],
            lumbar: usize,
            upside_down: bool,
            milliseconds: f64,
            warning: Option<String>,
        }
        to_js(&Detected {
            discs: &found.discs,
            lumbar,
            upside_down: found.upside_down,
            milliseconds: ms,
            warning,
        })
    }

    /// The detector's input for its first view of the current slice (the whole slice
    /// letterboxed), `[1, 1, size, size]` flattened: what `detect` feeds the network first, so
    /// another engine (the benchmark's ONNX Runtime Web) can run the same numbers.
    #[wasm_bindgen(js_name = detectorInput)]
    pub fn detector_input(&self) -> Result<Vec<f32>, JsError> {
        let input = &self.detector()?.card().input;
        let (slice, _) = self.slice()?;
        Ok(whole_slice_input(slice, input))
    }

    /// The detector network alone on one prepared input (`detectorInput`): its output maps,
    /// flattened, for the benchmark.
    #[wasm_bindgen(js_name = detectorMaps)]
    pub fn detector_maps(&self, input: &[f32]) -> Result<Vec<f32>, JsError> {
        let detector = self.detector()?;
        let s = detector.card().input.size;
        if input.len() != s * s {
            return Err(js(format!(
                "the detector takes {s} x {s} = {} values; got {}",
                s * s,
                input.len()
            )));
        }
        detector.maps(input.to_vec()).map_err(js)
    }

    /// Decode a slice (DICOM, PNG, JPEG); on error the current slice stays. Returns its size,
    /// depth, spacing and initial display window.
    #[wasm_bindgen(js_name = loadSlice)]
    pub fn load_slice(&mut self, bytes: &[u8], name: &str) -> Result<JsValue, JsError> {
        let slice = decode(bytes, name, DecodeOptions::default()).map_err(js)?;
        to_js(&self.set_slice(slice))
    }

    fn set_slice(&mut self, slice: Slice) -> SliceInfo {
        let p = self.params();
        let stretch = Stretch::of(&slice, p.stretch_low, p.stretch_high);
        let (center, width, source) = match slice.window {
            Some(w) if w.width > 0.0 => (w.center, w.width, "dicom"),
            _ => (
                0.5 * (stretch.low + stretch.high) as f64,
                (stretch.high - stretch.low) as f64,
                "stretch",
            ),
        };
        let info = SliceInfo {
            width: slice.width,
            height: slice.height,
            bits: slice.bits,
            spacing_mm: slice.spacing_mm,
            window: WindowOut {
                center,
                width,
                source,
            },
        };
        self.slice = Some((slice, stretch));
        self.turned = None;
        info
    }

    /// The slice's native values (row-major), for window/level display in the page: copied
    /// once, straight from wasm memory into a JavaScript array the worker then transfers to the
    /// page (a `Vec` return would clone it in Rust first).
    #[wasm_bindgen(js_name = slicePixels)]
    pub fn slice_pixels(&self) -> Result<js_sys::Float32Array, JsError> {
        Ok(js_sys::Float32Array::from(&self.slice()?.0.pixels[..]))
    }

    /// Start gathering a study; the previous study's zips are dropped.
    #[wasm_bindgen(js_name = studyBegin)]
    pub fn study_begin(&mut self) {
        self.collector = Some(Collector::new());
        self.sources = Sources::default();
    }

    /// Add one file of the study: a DICOM image's header is read, a DICOMDIR's listing, a zip
    /// is opened (within its limits) and kept, its entries read one by one; anything else is
    /// listed as skipped. Returns `{"kind": "zip" | "file", "entries"?}`; a bad file is never an
    /// error, only a skipped entry in `studyFinish`.
    #[wasm_bindgen(js_name = studyAdd)]
    pub fn study_add(&mut self, bytes: Vec<u8>, name: &str) -> Result<JsValue, JsError> {
        let collector = self
            .collector
            .as_mut()
            .ok_or_else(|| js("no study begun (call studyBegin first)"))?;
        #[derive(Serialize)]
        struct Added {
            kind: &'static str,
            entries: Option<usize>,
        }
        if !is_zip(&bytes) {
            collector.add(name, &bytes);
            return to_js(&Added {
                kind: "file",
                entries: None,
            });
        }
        let entries = match Archive::open(name, bytes) {
            Ok(mut archive) => {
                collector.add_archive(&mut archive);
                let n = archive.entries().len();
                self.sources.archives.push(archive);
                Some(n)
            }
            Err(e) => {
                collector.skip_error(name, &e);
                None
            }
        };
        to_js(&Added {
            kind: "zip",
            entries,
        })
    }

    /// Group the files added into series and propose the sagittal T2 series. Returns the study
    /// (`series`, `skipped`, `proposed`, `dicomdirs`) and `mid_slices`, each series' middle.
    #[wasm_bindgen(js_name = studyFinish)]
    pub fn study_finish(&mut self) -> Result<JsValue, JsError> {
        let study = self
            .collector
            .take()
            .ok_or_else(|| js("no study begun (call studyBegin first)"))?
            .finish();
        to_js(&StudyOut {
            mid_slices: study.series.iter().map(|s| s.mid_slice()).collect(),
            study: &study,
        })
    }

    /// Decode a slice of the open study that lives in one of its zips (the page reads other
    /// files itself and calls `loadSlice`); on error the current slice stays.
    #[wasm_bindgen(js_name = loadStudySlice)]
    pub fn load_study_slice(&mut self, name: &str) -> Result<JsValue, JsError> {
        let bytes = self.sources.read(name).map_err(js)?;
        self.load_slice(&bytes, name)
    }

    fn slice(&self) -> Result<&(Slice, Stretch), JsError> {
        self.slice.as_ref().ok_or_else(|| js("no slice loaded"))
    }

    /// The active model's preprocessing, or SPEC.md's defaults before a model is loaded.
    fn params(&self) -> RoiParams {
        self.model
            .as_ref()
            .map(|m| m.card().preprocessing.clone())
            .unwrap_or_default()
    }

    fn model(&self) -> Result<&Classifier, JsError> {
        self.model.as_ref().ok_or_else(|| js("no model loaded"))
    }

    /// The ROI of one disc as the model will see it: 128x128 gray bytes.
    #[wasm_bindgen(js_name = roiPreview)]
    pub fn roi_preview(&self, corners: &[f64]) -> Result<Vec<u8>, JsError> {
        let roi = self
            .rois(corners, &self.params().own_roi_only())?
            .into_iter()
            .next();
        Ok(roi
            .ok_or_else(|| js("roiPreview needs the eight numbers of one disc's corners"))?
            .to_gray8())
    }

    /// The rectangle cut for one disc, as four points x,y (for drawing it on the slice).
    #[wasm_bindgen(js_name = roiOutline)]
    pub fn roi_outline(&self, corners: &[f64]) -> Result<Vec<f64>, JsError> {
        let (slice, _) = self.slice()?;
        let p = self.params();
        let c = corners_from(corners)?;
        let rect = RoiRect::new(&c[0], (slice.width, slice.height), &p).map_err(js)?;
        Ok(rect.outline().iter().flat_map(|p| [p.x, p.y]).collect())
    }

    /// Classify every disc (eight numbers each) in one call. Returns
    /// `[{"label", "probabilities": {...}, "logits": [...]}, ...]` in input order.
    pub fn classify(&self, corners: &[f64]) -> Result<JsValue, JsError> {
        let preds = self
            .model()?
            .classify(&self.rois(corners, &self.params())?)
            .map_err(js)?;
        predictions_js(&preds)
    }

    /// Classify network input made by another instance's `modelInput` (same JSON as
    /// `classify`): the page's helper workers hold only the model and take a share of the discs.
    #[wasm_bindgen(js_name = classifyInput)]
    pub fn classify_input(&self, input: &[f32]) -> Result<JsValue, JsError> {
        let preds = self.model()?.classify_input(input.to_vec()).map_err(js)?;
        predictions_js(&preds)
    }

    /// The pooled features (the last layer's input, `model::inference`) of these discs of the
    /// current slice, flattened `[n, width]`: what adaptation refits the last layer on. An error
    /// for a model without the `features` output, a disc outside the slice, no slice.
    pub fn features(&self, corners: &[f64]) -> Result<Vec<f32>, JsError> {
        let rows = self
            .model()?
            .features(&self.rois(corners, &self.params())?)
            .map_err(js)?;
        Ok(rows.concat())
    }

    /// Adapt the model file `base` (named `name`) to labelled discs: `discs` is
    /// `[{"subject", "name", "label"}]` (label: normal, wavy, notched, schmorl or lesion) and
    /// `features` their pooled features, `[n, width]` flattened, from `features`. The same
    /// function as `endplate adapt` (`crate::adapt::adapt`). Returns `{report, summary, card,
    /// bytes, milliseconds}`, `bytes` the adapted model file (a `Uint8Array`); refusals (too few
    /// discs, one label, one subject, no features output) are errors with the reason.
    pub fn adapt(
        &self,
        base: &[u8],
        name: &str,
        discs: JsValue,
        features: &[f32],
        date: &str,
    ) -> Result<JsValue, JsError> {
        #[derive(Deserialize)]
        struct DiscLabel {
            subject: String,
            #[serde(default)]
            name: String,
            label: String,
        }
        let t0 = performance_now();
        let discs: Vec<DiscLabel> = serde_wasm_bindgen::from_value(discs)
            .map_err(|e| js(format!("labelled discs: {e}")))?;
        if discs.is_empty() || features.len() % discs.len() != 0 {
            return Err(js(format!(
                "{} feature values for {} labelled discs",
                features.len(),
                discs.len()
            )));
        }
        let width = features.len() / discs.len();
        let examples = discs
            .into_iter()
            .zip(features.chunks_exact(width))
            .map(|(d, f)| {
                Ok(crate::adapt::Example {
                    label: d.label.parse::<Label>().map_err(js)?,
                    subject: d.subject,
                    name: d.name,
                    features: f.to_vec(),
                })
            })
            .collect::<Result<Vec<_>, JsError>>()?;
        let adapted =
            crate::adapt::adapt(name, base, &examples, date, Default::default()).map_err(js)?;
        let out = js_sys::Object::new();
        let set = |k: &str, v: &JsValue| {
            js_sys::Reflect::set(&out, &JsValue::from_str(k), v)
                .map(|_| ())
                .map_err(|_| js(format!("could not set `{k}` of the result")))
        };
        set("report", &to_js(&adapted.report)?)?;
        set("summary", &to_js(&card::summary(&adapted.card))?)?;
        set("card", &to_js(&adapted.card)?)?;
        set(
            "bytes",
            &js_sys::Uint8Array::from(&adapted.bytes[..]).into(),
        )?;
        set("milliseconds", &JsValue::from_f64(performance_now() - t0))?;
        Ok(out.into())
    }

    /// One disc's evidence map from its network input (`modelInput` of one disc): occlusion
    /// sensitivity (`model::evidence`). Returns `{label, display, probability, scale, patch,
    /// stride, runs, size, rgba}`, `rgba` the `size x size` overlay (yellow to red, transparent
    /// where hiding the pixel costs the class nothing) and `scale` the fall shown as full red.
    #[wasm_bindgen(js_name = evidenceInput)]
    pub fn evidence_input(&self, input: &[f32]) -> Result<JsValue, JsError> {
        use crate::model::evidence::{occlusion_of_input, PATCH, STRIDE};
        let e = occlusion_of_input(self.model()?, input, PATCH, STRIDE).map_err(js)?;
        to_js(&serde_json::json!({
            "label": e.class.id(),
            "display": e.class.display_name(),
            "probability": e.probability,
            "scale": e.scale(),
            "patch": PATCH,
            "stride": STRIDE,
            "runs": e.runs,
            "size": e.size,
            "rgba": e.to_rgba(),
        }))
    }

    /// The network's input for these discs, `[n, 3, 128, 128]` flattened: what `classify` feeds
    /// the model, so another engine (the benchmark's ONNX Runtime Web) can run the same numbers.
    #[wasm_bindgen(js_name = modelInput)]
    pub fn model_input(&self, corners: &[f64]) -> Result<Vec<f32>, JsError> {
        Ok(crate::disc::roi::network_input(
            &self.rois(corners, &self.params())?,
            &self.params(),
        ))
    }

    /// The ROIs of these discs (corners as shown), from the slice turned upright where the
    /// detector found it stored upside down.
    fn rois(&self, corners: &[f64], p: &RoiParams) -> Result<Vec<Roi>, JsError> {
        let (shown, stretch) = self.slice()?;
        let slice = self.turned.as_ref().unwrap_or(shown);
        corners_from(corners)?
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let c = match self.turned {
                    Some(_) => flip_corners(c, shown.height),
                    None => *c,
                };
                Roi::extract_with(slice, stretch, &c, p)
                    .map_err(|e| js(format!("disc {}: {e}", i + 1)))
            })
            .collect()
    }

    /// Draw a fresh teaching phantom (balanced classes) and make it the current slice. Returns
    /// `{"info": ..., "truth": [{"level", "label", "corners": [[x, y] x4]}]}`.
    #[wasm_bindgen(js_name = newPhantom)]
    pub fn new_phantom(&mut self, seed: u32) -> Result<JsValue, JsError> {
        let ph = render(&plan_subject(seed as u64, 0, ClassMix::Balanced, 16));
        let truth: Vec<_> = ph
            .discs
            .iter()
            .map(|d| TruthOut {
                level: d.level.id(),
                label: d.class.id(),
                display: d.class.display_name(),
                severity: d.severity,
                corners: d.corners.iter().map(|p| [p.x, p.y]).collect(),
            })
            .collect();
        let info = self.set_slice(ph.slice);
        to_js(&PhantomOut { info, truth })
    }

    /// The placed discs as a manifest CSV (SPEC.md) with prediction columns and where the slice
    /// came from. `discs` is an array: `[{"level", "corners": [x1, y1, ..., y4], "truth"?,
    /// "prediction"?: {"label", "probabilities"}}]`; `context` (may be `undefined`):
    /// `{"spacing_mm"?: [row, column], "series_uid"?, "series_description"?, "slice_index"?}`.
    #[wasm_bindgen(js_name = exportCsv)]
    pub fn export_csv(
        &self,
        image: &str,
        subject: &str,
        discs: JsValue,
        context: JsValue,
    ) -> Result<String, JsError> {
        let discs: Vec<DiscIn> = serde_wasm_bindgen::from_value(discs)
            .map_err(|e| js(format!("discs to export: {e}")))?;
        let context: ExportContext = if context.is_undefined() || context.is_null() {
            ExportContext::default()
        } else {
            serde_wasm_bindgen::from_value(context)
                .map_err(|e| js(format!("export context: {e}")))?
        };
        let opt = |v: Option<String>| v.unwrap_or_default();
        let source = [
            opt(context.spacing_mm.map(|s| format!("{}", s.0))),
            opt(context.spacing_mm.map(|s| format!("{}", s.1))),
            opt(context.series_uid.clone()),
            opt(context.series_description.clone()),
            opt(context.slice_index.map(|i| i.to_string())),
        ];
        let mut rows = Vec::new();
        let mut extra = Vec::new();
        for d in &discs {
            let corners = corners_from(&d.corners)?[0];
            let level = d
                .level
                .as_deref()
                .map(str::parse::<Level>)
                .transpose()
                .map_err(js)?;
            let label = d
                .truth
                .as_deref()
                .map(str::parse::<Label>)
                .transpose()
                .map_err(js)?;
            rows.push(Row {
                image: image.to_string(),
                subject: subject.to_string(),
                level,
                label,
                corners,
            });
            let p = d.prediction.as_ref();
            let mut e = vec![p.and_then(|p| p.label.clone()).unwrap_or_default()];
            for c in Class::ALL {
                e.push(
                    p.and_then(|p| p.probabilities.get(c.id()).copied().flatten())
                        .map(|v| format!("{v:.6}"))
                        .unwrap_or_default(),
                );
            }
            e.extend(source.iter().cloned());
            extra.push(e);
        }
        Ok(manifest::write(
            &rows,
            &[
                "predicted",
                "p_normal",
                "p_wavy",
                "p_notched",
                "p_schmorl",
                "spacing_row_mm",
                "spacing_col_mm",
                "series_uid",
                "series_description",
                "slice_index",
            ],
            &extra,
        ))
    }

    /// Read a manifest CSV back (e.g. an export): `[{"image", "level", "label", "corners"}]`.
    #[wasm_bindgen(js_name = importCsv)]
    pub fn import_csv(&self, name: &str, text: &str) -> Result<JsValue, JsError> {
        let rows = manifest::parse(name, text).map_err(js)?;
        let out: Vec<_> = rows
            .iter()
            .map(|r| RowOut {
                image: &r.image,
                level: r.level.map(|l| l.id()),
                label: r.label.map(|c| c.id()),
                corners: r.corners.iter().flat_map(|p| [p.x, p.y]).collect(),
            })
            .collect();
        to_js(&out)
    }
}
