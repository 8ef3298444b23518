//! Add the pooled features as the second output (`features`, float32 [N, 512]) to a model file
//! written before the writer did so, keeping its card and every weight: the file can then be
//! adapted (`endplate adapt`, the page's Adapt). Checks on fresh phantom discs that the logits
//! are unchanged (bit for bit) and that the last layer applied to the new output gives them,
//! before replacing the file.
//!
//! cargo run --example expose_features -- MODEL.onnx [OUT.onnx]

use endplate::model::file::parse_proto;
use endplate::model::last_layer::{expose_features, read_last_layer};
use endplate::phantom::{plan_subject, render, ClassMix};
use endplate::{Classifier, Roi};
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(input) = args.first() else {
        return Err("usage: expose_features MODEL.onnx [OUT.onnx]".into());
    };
    let output = args.get(1).unwrap_or(input);
    let bytes = std::fs::read(input)?;
    let mut proto = parse_proto(input, &bytes)?;
    expose_features(input, &mut proto)?;
    let out = proto.encode_to_vec();

    let before = Classifier::from_bytes(input, &bytes)?;
    let after = Classifier::from_bytes(output, &out)?;
    if before.card() != after.card() {
        return Err("the card changed; not written".into());
    }
    let layer = read_last_layer(output, &proto)?;
    let p = before.card().preprocessing.clone();
    let ph = render(&plan_subject(9001, 0, ClassMix::Balanced, 16));
    let corners: Vec<_> = ph.discs.iter().map(|d| d.corners).collect();
    let rois = Roi::extract_many(&ph.slice, &corners, &p)?;
    let (a, b) = (before.classify(&rois)?, after.classify(&rois)?);
    let features = after.features(&rois)?;
    let mut worst = 0.0f32;
    for ((a, b), f) in a.iter().zip(&b).zip(&features) {
        if a.logits != b.logits {
            return Err(format!("logits changed: {:?} -> {:?}", a.logits, b.logits).into());
        }
        for (l, m) in layer.logits4(f).iter().zip(b.logits) {
            worst = worst.max((l - m).abs());
        }
    }
    if worst > 1e-3 {
        return Err(format!("the last layer on the features misses the logits by {worst}").into());
    }
    endplate::files::write_atomic(std::path::Path::new(output), &out)?;
    println!(
        "{output}: `features` output added ({} -> {} bytes); logits of {} discs unchanged, last \
         layer on the features within {worst:.2e} of them",
        bytes.len(),
        out.len(),
        rois.len()
    );
    Ok(())
}
