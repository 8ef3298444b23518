//! A second network inside a detector file that places the corners of two closer views.
//!
//! Against the consensus of three blind annotations, a fine-tune of the bundled detector
//! placed corners 0.15–0.2 mm closer but broke the level chain on some slices. Joined, each
//! does what it does best. The file's own network finds the discs and names their levels: the
//! first and second views, and the closer view of all lumbar discs, which may add a lowest disc
//! the chain missed. The joined network runs the closer views of the upper and the lower half of
//! the lumbar discs, whose corners are averaged in. The number of network runs per slice stays
//! the same; the file carries both networks' weights.
//!
//! In the file, every node and tensor of the joined network starts with [`PREFIX`] and its maps
//! are the output [`OUTPUT`], next to `maps` (and `upside_down`); both read the same input.
//! [`split`](super::detector::split_corner_network) cuts the two apart again, so that each
//! runs alone.

use super::detector::{
    split_corner_network as split, DetectorCard, CORNER_NET_OUTPUT as OUTPUT,
    CORNER_NET_PREFIX as PREFIX, DETECTOR_INPUT, DETECTOR_OUTPUT,
};
use super::file::{card_json, encode_with_card, parse_proto};
use crate::{Error, Result};
use tract_onnx::pb;

fn prefixed(name: &str) -> String {
    if name.is_empty() || name == DETECTOR_INPUT {
        name.to_string()
    } else {
        format!("{PREFIX}{name}")
    }
}

/// The detector file `levels` with the network of `corners` (another detector file of the same
/// input and maps) joined to run its corner views; the card says where that network came from
/// (`corner_network`). An earlier joined network is replaced.
pub fn join(
    levels_name: &str,
    levels: &[u8],
    corners_name: &str,
    corners: &[u8],
) -> Result<Vec<u8>> {
    let (proto, _) = split(parse_proto(levels_name, levels)?);
    let mut card = DetectorCard::from_json(levels_name, &card_json(levels_name, &proto)?)?;
    let (other, _) = split(parse_proto(corners_name, corners)?);
    let other_card = DetectorCard::from_json(corners_name, &card_json(corners_name, &other)?)?;
    if other_card.input != card.input || other_card.decode.corner_maps != card.decode.corner_maps {
        return Err(Error::model(
            corners_name,
            format!(
                "its input or maps differ from {levels_name}'s: a joined corner network must \
                 read the same input and write the same maps (train it with --init {levels_name})"
            ),
        ));
    }
    if !card.decode.corner_views {
        return Err(Error::model(
            levels_name,
            "its card has no corner views (decode.corner_views), so a corner network would never run",
        ));
    }
    let theirs = other.graph.expect("parse_proto checked the graph");
    let mut proto = proto;
    let graph = proto.graph.as_mut().expect("parse_proto checked the graph");
    // Their maps only: an orientation layer of theirs is not carried over.
    let needed = needed_nodes(&theirs, DETECTOR_OUTPUT);
    for n in theirs
        .node
        .iter()
        .enumerate()
        .filter(|(i, _)| needed[*i])
        .map(|(_, n)| n)
    {
        let mut n = n.clone();
        n.name = prefixed(&n.name);
        n.input = n.input.iter().map(|s| prefixed(s)).collect();
        n.output = n.output.iter().map(|s| prefixed(s)).collect();
        graph.node.push(n);
    }
    let used: std::collections::HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    let inits: Vec<pb::TensorProto> = theirs
        .initializer
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.name = prefixed(&t.name);
            t
        })
        .filter(|t| used.contains(t.name.as_str()))
        .collect();
    graph.initializer.extend(inits);
    let mut out = theirs
        .output
        .iter()
        .find(|o| o.name == DETECTOR_OUTPUT)
        .cloned()
        .expect("split kept the maps");
    out.name = OUTPUT.to_string();
    graph.output.push(out);
    card.corner_network = serde_json::json!({
        "name": other_card.name,
        "training": other_card.training,
        "metrics": other_card.metrics,
    });
    encode_with_card(levels_name, proto, &card)
}

/// Which nodes `output` needs, walking back from it.
fn needed_nodes(graph: &pb::GraphProto, output: &str) -> Vec<bool> {
    let mut needed = vec![false; graph.node.len()];
    let mut wanted = vec![output.to_string()];
    while let Some(t) = wanted.pop() {
        for (i, n) in graph.node.iter().enumerate() {
            if !needed[i] && n.output.contains(&t) {
                needed[i] = true;
                wanted.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
            }
        }
    }
    needed
}
