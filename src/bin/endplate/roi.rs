//! `endplate roi`: one disc's ROI as a PNG, exactly as the network sees it.

use crate::common::{discs, load_model, rois, DiscArgs};
use clap::Args;
use endplate::{Error, Result, RoiParams};
use std::path::PathBuf;

#[derive(Args)]
pub struct RoiArgs {
    #[command(flatten)]
    disc: DiscArgs,
    /// Output PNG
    #[arg(long)]
    out: PathBuf,
    /// Take the preprocessing parameters from this model's card (default: SPEC.md's defaults)
    #[arg(long)]
    model: Option<PathBuf>,
}

pub fn run(a: RoiArgs) -> Result<()> {
    let params = match &a.model {
        // The own ROI only: the PNG shows no moved copies, so none is cut.
        Some(m) => load_model(Some(m))?.card().preprocessing.own_roi_only(),
        None => RoiParams::default(),
    };
    let (rows, base) = discs(&a.disc, None)?;
    let roi = rois(&rows, &base, a.disc.frame, &params)?.remove(0);
    let img = image::GrayImage::from_raw(roi.size as u32, roi.size as u32, roi.to_gray8())
        .expect("size matches");
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Invalid(format!("encoding PNG: {e}")))?;
    endplate::files::write_atomic(&a.out, &png)?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
