//! `endplate join-corner-network`: let a second detector's network place the corners of a
//! detector file's corner views, while the file's own network keeps finding the discs and
//! naming their levels.

use super::common::detector_path;
use clap::Args;
use endplate::model::corner_network::join;
use endplate::model::detector::Detector;
use endplate::{Error, Result};
use std::path::PathBuf;

#[derive(Args)]
pub struct JoinCornerNetworkArgs {
    /// Detector file whose network finds the discs and names their levels; default: the bundled
    /// detector
    #[arg(long)]
    pub detector: Option<PathBuf>,
    /// Detector file whose network runs the corner views instead (the same input and maps, such
    /// as a `train-detector --init` fine-tune of the first); its orientation layer is not used
    #[arg(long)]
    pub corners: PathBuf,
    /// Where to write the joined detector (may be the --detector file itself)
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: JoinCornerNetworkArgs) -> Result<()> {
    let path = detector_path(a.detector.as_deref())?;
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| Error::io(p, e));
    let (levels, corners) = (read(&path)?, read(&a.corners)?);
    let out = join(
        &path.display().to_string(),
        &levels,
        &a.corners.display().to_string(),
        &corners,
    )?;
    // Refuse to write what the detector would not load.
    let loaded = Detector::from_bytes(&a.out.display().to_string(), &out)?;
    if !loaded.has_corner_network() {
        return Err(Error::Invalid(
            "the written detector has no corner network".into(),
        ));
    }
    endplate::files::write_atomic(&a.out, &out)?;
    eprintln!(
        "wrote {} ({} bytes): {}'s network names the levels, {}'s places the corner views' corners",
        a.out.display(),
        out.len(),
        path.display(),
        a.corners.display()
    );
    Ok(())
}
