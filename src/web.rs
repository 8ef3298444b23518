//! The browser API: one exported struct over the library, every method returning `Result` so a
//! bad file becomes a JavaScript exception instead of a dead wasm instance. The page's worker
//! owns one `Endplate`; the page itself never touches the network or the model. The primary
//! worker also holds the disc detector and proposes the discs of each slice it opens.
//!
//! The last stage, wasm only: may use every other module of the library (never `train`, which
//! the wasm build does not compile). The page's worker pool is in `www/engine.js`.

use crate::disc::geometry::Point;
use crate::disc::roi::{Roi, RoiParams, RoiRect};
use crate::image::contrast::Stretch;
use crate::image::decode::{decode, DecodeOptions};
use crate::image::warp::Affine;
use crate::manifest::{self, Row};
use crate::model::card;
use crate::model::detector::{stretched, view_input, Detector};
use crate::phantom::{plan_subject, render, ClassMix};
use crate::{Class, Classifier, Label, Level, Slice};
use wasm_bindgen::prelude::*;

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

fn predictions_json(preds: &[crate::Prediction]) -> String {
    let out: Vec<_> = preds
        .iter()
        .map(|p| {
            serde_json::json!({
                "label": p.class.id(),
                "display": p.class.display_name(),
                "probabilities": Class::ALL.iter().map(|c| (c.id().to_string(), serde_json::json!(p.probabilities[c.index()]))).collect::<serde_json::Map<_, _>>(),
                "logits": p.logits,
            })
        })
        .collect();
    serde_json::Value::Array(out).to_string()
}

#[wasm_bindgen]
pub struct Endplate {
    model: Option<Classifier>,
    detector: Option<Detector>,
    slice: Option<(Slice, Stretch)>,
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
        }
    }

    /// Load a model file; on error the current model stays. Returns the card as JSON.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(&mut self, bytes: &[u8], name: &str) -> Result<String, JsError> {
        let model = Classifier::from_bytes(name, bytes).map_err(js)?;
        let out = serde_json::json!({
            "summary": card::summary(model.card()),
            "card": model.card(),
        });
        self.model = Some(model);
        // The contrast stretch follows the model's card: refresh the cached one, so previews and
        // classification keep using one stretch computed once per slice and model.
        let p = self.params();
        if let Some((slice, stretch)) = self.slice.as_mut() {
            *stretch = Stretch::of(slice, p.stretch_low, p.stretch_high);
        }
        Ok(out.to_string())
    }

    /// Load a disc detector file (card `kind: "detector"`); on error the current detector, if
    /// any, stays. Returns `{"summary": ..., "card": ...}` as JSON.
    #[wasm_bindgen(js_name = loadDetector)]
    pub fn load_detector(&mut self, bytes: &[u8], name: &str) -> Result<String, JsError> {
        let detector = Detector::from_bytes(name, bytes).map_err(js)?;
        let out = serde_json::json!({
            "summary": detector.card().summary(),
            "card": detector.card(),
        });
        self.detector = Some(detector);
        Ok(out.to_string())
    }

    fn detector(&self) -> Result<&Detector, JsError> {
        self.detector
            .as_ref()
            .ok_or_else(|| js("no disc detector loaded"))
    }

    /// Find the discs of the current slice. Returns JSON `{"discs": [{"level", "score",
    /// "corners": [[x, y] x4]}], "lumbar": n, "milliseconds": t}`: every disc found, top to
    /// bottom, corners in SPEC order; `level` is `null` when no sacrum was found, and `lumbar`
    /// counts the discs L1L2-L5S1 (the ones the classifier takes).
    pub fn detect(&self) -> Result<String, JsError> {
        let detector = self.detector()?;
        let (slice, _) = self.slice()?;
        let t0 = performance_now();
        let discs = detector.detect(slice).map_err(js)?;
        let ms = performance_now() - t0;
        let lumbar = discs.iter().filter(|d| d.lumbar_level().is_some()).count();
        Ok(serde_json::json!({"discs": discs, "lumbar": lumbar, "milliseconds": ms}).to_string())
    }

    /// The detector's input for its first view of the current slice (the whole slice
    /// letterboxed), `[1, 1, size, size]` flattened: what `detect` feeds the network first, so
    /// another engine (the benchmark's ONNX Runtime Web) can run the same numbers.
    #[wasm_bindgen(js_name = detectorInput)]
    pub fn detector_input(&self) -> Result<Vec<f32>, JsError> {
        let input = &self.detector()?.card().input;
        let (slice, _) = self.slice()?;
        let (w, h) = (slice.width, slice.height);
        let values = stretched(slice, input);
        Ok(view_input(
            &values,
            w,
            h,
            &Affine::letterbox(w, h, input.size),
            input,
        ))
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
    /// depth, spacing and initial display window as JSON.
    #[wasm_bindgen(js_name = loadSlice)]
    pub fn load_slice(&mut self, bytes: &[u8], name: &str) -> Result<String, JsError> {
        let slice = decode(bytes, name, DecodeOptions::default()).map_err(js)?;
        self.set_slice(slice)
    }

    fn set_slice(&mut self, slice: Slice) -> Result<String, JsError> {
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
        let info = serde_json::json!({
            "width": slice.width, "height": slice.height, "bits": slice.bits,
            "spacing_mm": slice.spacing_mm,
            "window": {"center": center, "width": width, "source": source},
        });
        self.slice = Some((slice, stretch));
        Ok(info.to_string())
    }

    /// The slice's native values (row-major), for window/level display in the page.
    #[wasm_bindgen(js_name = slicePixels)]
    pub fn slice_pixels(&self) -> Result<Vec<f32>, JsError> {
        Ok(self.slice()?.0.pixels.clone())
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
        let (slice, stretch) = self.slice()?;
        let p = self.params();
        let c = corners_from(corners)?;
        let roi = Roi::extract_with(slice, stretch, &c[0], &p).map_err(js)?;
        Ok(roi.to_gray8())
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

    /// Classify every disc (eight numbers each) in one call. Returns JSON:
    /// `[{"label", "probabilities": {...}, "logits": [...]}, ...]` in input order.
    pub fn classify(&self, corners: &[f64]) -> Result<String, JsError> {
        let preds = self.model()?.classify(&self.rois(corners)?).map_err(js)?;
        Ok(predictions_json(&preds))
    }

    /// Classify network input made by another instance's `modelInput` (same JSON as
    /// `classify`): the page's helper workers hold only the model and take a share of the discs.
    #[wasm_bindgen(js_name = classifyInput)]
    pub fn classify_input(&self, input: &[f32]) -> Result<String, JsError> {
        let preds = self.model()?.classify_input(input.to_vec()).map_err(js)?;
        Ok(predictions_json(&preds))
    }

    /// The network's input for these discs, `[n, 3, 128, 128]` flattened: what `classify` feeds
    /// the model, so another engine (the benchmark's ONNX Runtime Web) can run the same numbers.
    #[wasm_bindgen(js_name = modelInput)]
    pub fn model_input(&self, corners: &[f64]) -> Result<Vec<f32>, JsError> {
        Ok(crate::disc::roi::network_input(
            &self.rois(corners)?,
            &self.params(),
        ))
    }

    fn rois(&self, corners: &[f64]) -> Result<Vec<Roi>, JsError> {
        let (slice, stretch) = self.slice()?;
        let p = self.params();
        corners_from(corners)?
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Roi::extract_with(slice, stretch, c, &p)
                    .map_err(|e| js(format!("disc {}: {e}", i + 1)))
            })
            .collect()
    }

    /// Draw a fresh teaching phantom (balanced classes) and make it the current slice. Returns
    /// `{"info": ..., "truth": [{"level", "label", "corners": [[x, y] x4]}]}`.
    #[wasm_bindgen(js_name = newPhantom)]
    pub fn new_phantom(&mut self, seed: u32) -> Result<String, JsError> {
        let ph = render(&plan_subject(seed as u64, 0, ClassMix::Balanced, 16));
        let truth: Vec<_> = ph
            .discs
            .iter()
            .map(|d| serde_json::json!({"level": d.level.id(), "label": d.class.id(), "display": d.class.display_name(), "severity": d.severity, "corners": d.corners.iter().map(|p| [p.x, p.y]).collect::<Vec<_>>()}))
            .collect();
        let info: serde_json::Value =
            serde_json::from_str(&self.set_slice(ph.slice)?).map_err(js)?;
        Ok(serde_json::json!({"info": info, "truth": truth}).to_string())
    }

    /// The placed discs as a manifest CSV (SPEC.md) with prediction columns. `discs` is JSON:
    /// `[{"level", "corners": [x1, y1, ..., y4], "truth"?, "prediction"?: {"label", "probabilities"}}]`.
    #[wasm_bindgen(js_name = exportCsv)]
    pub fn export_csv(&self, image: &str, subject: &str, discs: &str) -> Result<String, JsError> {
        let discs: Vec<serde_json::Value> = serde_json::from_str(discs).map_err(js)?;
        let mut rows = Vec::new();
        let mut extra = Vec::new();
        for d in &discs {
            let flat: Vec<f64> = d["corners"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
                .unwrap_or_default();
            let corners = corners_from(&flat)?[0];
            let level = d["level"]
                .as_str()
                .map(str::parse::<Level>)
                .transpose()
                .map_err(js)?;
            let label = d["truth"]
                .as_str()
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
            let p = &d["prediction"];
            let mut e = vec![p["label"].as_str().unwrap_or("").to_string()];
            for c in Class::ALL {
                e.push(
                    p["probabilities"][c.id()]
                        .as_f64()
                        .map(|v| format!("{v:.6}"))
                        .unwrap_or_default(),
                );
            }
            extra.push(e);
        }
        Ok(manifest::write(
            &rows,
            &["predicted", "p_normal", "p_wavy", "p_notched", "p_schmorl"],
            &extra,
        ))
    }

    /// Read a manifest CSV back (e.g. an export): `[{"image", "level", "label", "corners"}]`.
    #[wasm_bindgen(js_name = importCsv)]
    pub fn import_csv(&self, name: &str, text: &str) -> Result<String, JsError> {
        let rows = manifest::parse(name, text).map_err(js)?;
        let out: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"image": r.image, "level": r.level.map(|l| l.id()), "label": r.label.map(|c| c.id()), "corners": r.corners.iter().flat_map(|p| [p.x, p.y]).collect::<Vec<_>>()}))
            .collect();
        Ok(serde_json::Value::Array(out).to_string())
    }
}
