//! The browser API: one exported struct over the library, every method returning `Result` so a
//! bad file becomes a JavaScript exception instead of a dead wasm instance. The page's worker
//! owns one `Endplate`; the page itself never touches the network or the model.

use crate::card;
use crate::contrast::Stretch;
use crate::decode::{decode, DecodeOptions};
use crate::geometry::Point;
use crate::roi::{Roi, RoiRect};
use crate::{Class, Classifier, Slice};
use wasm_bindgen::prelude::*;

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

#[wasm_bindgen]
pub struct Endplate {
    model: Option<Classifier>,
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
        Ok(out.to_string())
    }

    /// Decode a slice (DICOM, PNG, JPEG); on error the current slice stays. Returns its size,
    /// depth, spacing and initial display window as JSON.
    #[wasm_bindgen(js_name = loadSlice)]
    pub fn load_slice(&mut self, bytes: &[u8], name: &str) -> Result<String, JsError> {
        let slice = decode(bytes, name, DecodeOptions::default()).map_err(js)?;
        self.set_slice(slice)
    }

    fn set_slice(&mut self, slice: Slice) -> Result<String, JsError> {
        let p = self
            .model
            .as_ref()
            .map(|m| m.card().preprocessing.clone())
            .unwrap_or_default();
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

    fn model(&self) -> Result<&Classifier, JsError> {
        self.model.as_ref().ok_or_else(|| js("no model loaded"))
    }

    /// The ROI of one disc as the model will see it: 128x128 gray bytes.
    #[wasm_bindgen(js_name = roiPreview)]
    pub fn roi_preview(&self, corners: &[f64]) -> Result<Vec<u8>, JsError> {
        let (slice, stretch) = self.slice()?;
        let p = self
            .model
            .as_ref()
            .map(|m| m.card().preprocessing.clone())
            .unwrap_or_default();
        let c = corners_from(corners)?;
        let roi = Roi::extract_with(slice, stretch, &c[0], &p).map_err(js)?;
        Ok(roi.to_gray8())
    }

    /// The rectangle cut for one disc, as four points x,y (for drawing it on the slice).
    #[wasm_bindgen(js_name = roiOutline)]
    pub fn roi_outline(&self, corners: &[f64]) -> Result<Vec<f64>, JsError> {
        let (slice, _) = self.slice()?;
        let p = self
            .model
            .as_ref()
            .map(|m| m.card().preprocessing.clone())
            .unwrap_or_default();
        let c = corners_from(corners)?;
        let rect = RoiRect::new(&c[0], (slice.width, slice.height), &p).map_err(js)?;
        Ok(rect.outline().iter().flat_map(|p| [p.x, p.y]).collect())
    }

    /// Classify every disc (eight numbers each) in one batched run. Returns JSON:
    /// `[{"label", "probabilities": {...}, "logits": [...]}, ...]` in input order.
    pub fn classify(&self, corners: &[f64]) -> Result<String, JsError> {
        let (slice, _) = self.slice()?;
        let model = self.model()?;
        let p = &model.card().preprocessing;
        // The stretch depends on the model's card, so recompute rather than trust the cached one.
        let stretch = Stretch::of(slice, p.stretch_low, p.stretch_high);
        let rois = corners_from(corners)?
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Roi::extract_with(slice, &stretch, c, p)
                    .map_err(|e| js(format!("disc {}: {e}", i + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let preds = model.classify(&rois).map_err(js)?;
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
        Ok(serde_json::Value::Array(out).to_string())
    }
}
