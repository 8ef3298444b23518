//! Add a note to a model's card after training (e.g. why the schedule was chosen), leaving the
//! weights untouched: sets `training.details.<KEY>` to a string.
//!
//! cargo run --release --example amend_card -- MODEL.onnx KEY "TEXT"

use endplate::model::card::CARD_KEY;
use endplate::model::file::{parse_proto, read_card};
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, key, text] = [0, 1, 2].map(|i| args.get(i).cloned().unwrap_or_default());
    if text.is_empty() {
        return Err("usage: amend_card MODEL.onnx KEY TEXT".into());
    }
    let bytes = std::fs::read(&path)?;
    let mut proto = parse_proto(&path, &bytes)?;
    let mut card = read_card(&path, &proto)?;
    card.training.details[key.as_str()] = serde_json::Value::String(text);
    let json = serde_json::to_string(&card)?;
    let entry = proto
        .metadata_props
        .iter_mut()
        .find(|p| p.key == CARD_KEY)
        .ok_or("no card")?;
    entry.value = json;
    let out = proto.encode_to_vec();
    read_card(&path, &parse_proto(&path, &out)?)?;
    endplate::files::write_atomic(std::path::Path::new(&path), &out)?;
    println!("{path}: training.details.{key} set");
    Ok(())
}
