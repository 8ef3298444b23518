//! Writing outputs so that a crash or Ctrl-C never leaves a half-written file behind: write
//! beside the target, then rename over it.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile_in(dir, path)?;
    let tmp_path = tmp.1.clone();
    let result = (|| {
        tmp.0.write_all(bytes)?;
        tmp.0.sync_all()?;
        drop(tmp.0);
        std::fs::rename(&tmp_path, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp_path);
        Error::io(path, e)
    })
}

fn tempfile_in(dir: &Path, target: &Path) -> Result<(std::fs::File, std::path::PathBuf)> {
    let stem = target
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    for attempt in 0..100u32 {
        let p = dir.join(format!(".{stem}.{}.{attempt}.tmp", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok((f, p)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Err(Error::Invalid(format!(
        "cannot create a temporary file in {}",
        dir.display()
    )))
}
