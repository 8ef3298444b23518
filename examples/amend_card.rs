//! Add to a model's card after training, leaving the weights untouched: sets the card field at
//! a dotted PATH (e.g. `training.details.schedule_note`, `metrics.real_cross_validation`,
//! `warning`, a detector's `decode.corner_threshold`) to VALUE: the JSON in a file for `@FILE`,
//! else the text as a string. The card is read back and checked, as a classifier's or a
//! detector's by its kind, before the file is replaced.
//!
//! cargo run --release --example amend_card -- MODEL.onnx PATH "TEXT"
//! cargo run --release --example amend_card -- MODEL.onnx metrics.real_cross_validation @cv.json

use endplate::model::detector::{DetectorCard, DETECTOR_KIND};
use endplate::model::file::{card_json, encode_with_card, parse_proto, read_card};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, key, text] = [0, 1, 2].map(|i| args.get(i).cloned().unwrap_or_default());
    if text.is_empty() || key.is_empty() {
        return Err("usage: amend_card MODEL.onnx PATH (TEXT | @FILE.json)".into());
    }
    let value = match text.strip_prefix('@') {
        Some(file) => serde_json::from_str(&std::fs::read_to_string(file)?)?,
        None => serde_json::Value::String(text),
    };
    let bytes = std::fs::read(&path)?;
    let proto = parse_proto(&path, &bytes)?;
    let mut card: serde_json::Value = serde_json::from_str(&card_json(&path, &proto)?)?;
    let detector = card["kind"] == DETECTOR_KIND;
    let mut at = &mut card;
    for part in key.split('.') {
        if at.is_null() {
            *at = serde_json::json!({});
        }
        at = at
            .as_object_mut()
            .ok_or_else(|| format!("{key}: `{part}` is inside a value that is not an object"))?
            .entry(part)
            .or_insert(serde_json::Value::Null);
    }
    *at = value;
    let out = encode_with_card(&path, proto, &card)?;
    let written = parse_proto(&path, &out)?;
    if detector {
        DetectorCard::from_json(&path, &card_json(&path, &written)?)?;
    } else {
        read_card(&path, &written)?;
    }
    endplate::files::write_atomic(std::path::Path::new(&path), &out)?;
    println!("{path}: {key} set");
    Ok(())
}
