//! Gathering a study's files, whatever they came as: single files (a folder walked on disk, files
//! the page was given one at a time), zips and DICOMDIRs. The page's worker and the CLI both
//! feed a [`Collector`] and keep a [`Sources`] to read the chosen slice's bytes again, so the two
//! make the same study of the same files.

use super::archive::{is_zip, Archive};
use super::dicomdir::{beside, match_key};
use super::header::{read_file, FileKind, Header};
use super::{DicomdirNote, Skipped, Study};
use crate::error::{Error, Result};
use std::collections::HashSet;

/// A study being gathered: headers of the images so far, the files skipped and why, and the
/// DICOMDIRs met (checked against every file name once all are in).
#[derive(Debug, Default)]
pub struct Collector {
    headers: Vec<Header>,
    skipped: Vec<Skipped>,
    dicomdirs: Vec<(String, Vec<String>)>,
    names: Vec<String>,
}

impl Collector {
    pub fn new() -> Collector {
        Collector::default()
    }

    /// One file: an image's header is kept, a DICOMDIR's listing too, anything else is skipped
    /// with the reason. A zip given here is skipped: the caller opens a top-level zip as an
    /// [`Archive`] (and keeps it) and hands it to [`Collector::add_archive`].
    pub fn add(&mut self, name: &str, bytes: &[u8]) {
        if is_zip(bytes) {
            return self.skip(
                name,
                "a zip inside the study is not opened; unzip it, or open it on its own",
            );
        }
        self.take(name, read_file(bytes, name));
    }

    /// A file already read by [`read_file`].
    fn take(&mut self, name: &str, read: std::result::Result<FileKind, String>) {
        match read {
            Ok(FileKind::Image(h)) => self.headers.push(*h),
            Ok(FileKind::Dicomdir(files)) => self.dicomdirs.push((name.to_string(), files)),
            Err(reason) => return self.skip(name, reason),
        }
        self.names.push(name.to_string());
    }

    /// Every file entry of a zip, its first [`HEAD_BYTES`] unpacked (the whole entry only when
    /// its header does not fit in them). An entry that cannot be unpacked (encrypted, an
    /// unsupported method, a lying size) is skipped with the reason.
    pub fn add_archive(&mut self, archive: &mut Archive) {
        let entries = archive.entries().to_vec();
        for entry in &entries {
            let name = archive.study_name(entry);
            match archive.read_head(entry, HEAD_BYTES) {
                Ok(head) => self.add_head(&name, head, || archive.read(entry)),
                Err(e) => self.skip_error(&name, &e),
            }
        }
    }

    /// A file known by its first bytes (at most [`HEAD_BYTES`]): its header where it fits in
    /// them, else the whole file, read by `whole`. One short read serves nearly every file, so
    /// pixel data are read (and unzipped) only for the slice that is shown.
    fn add_head(&mut self, name: &str, head: Vec<u8>, whole: impl FnOnce() -> Result<Vec<u8>>) {
        if is_zip(&head) {
            return self.add(name, &head);
        }
        let read = read_file(&head, name);
        if read.is_ok() || (head.len() as u64) < HEAD_BYTES {
            self.take(name, read);
        } else {
            match whole() {
                Ok(bytes) => self.add(name, &bytes),
                Err(e) => self.skip_error(name, &e),
            }
        }
    }

    /// [`Collector::skip`] for an error that names the file itself (the list names it already).
    pub fn skip_error(&mut self, name: &str, e: &Error) {
        let text = e.to_string();
        let reason = text.strip_prefix(&format!("{name}: ")).unwrap_or(&text);
        self.skip(name, reason.to_string());
    }

    /// A file that is not part of any series (unreadable, foreign), and why.
    pub fn skip(&mut self, name: &str, reason: impl Into<String>) {
        self.names.push(name.to_string());
        self.skipped.push(Skipped {
            name: name.to_string(),
            reason: reason.into(),
        });
    }

    /// Group the images into series and propose one; check each DICOMDIR's listing against the
    /// files that came.
    pub fn finish(mut self) -> Study {
        let present: HashSet<String> = self.names.iter().map(|n| match_key(n)).collect();
        let dicomdirs = self
            .dicomdirs
            .iter()
            .map(|(name, files)| DicomdirNote {
                name: name.clone(),
                listed: files.len(),
                missing: files
                    .iter()
                    .map(|f| beside(name, f))
                    .filter(|f| !present.contains(&match_key(f)))
                    .collect(),
            })
            .collect();
        let mut study = Study::from_headers(std::mem::take(&mut self.headers), self.skipped);
        study.dicomdirs = dicomdirs;
        study
    }
}

impl Study {
    /// Group files (name, bytes) into series. Never fails: what cannot be read is skipped.
    pub fn from_files<'a, I>(files: I) -> Study
    where
        I: IntoIterator<Item = (String, &'a [u8])>,
    {
        let mut c = Collector::new();
        for (name, bytes) in files {
            c.add(&name, bytes);
        }
        c.finish()
    }
}

/// Where a study's bytes are read from again once a slice is chosen: the zips it came in (held
/// in memory), else the file system (native) or the page's own files (the page asks the
/// archives first and reads its `File` otherwise).
#[derive(Debug, Default)]
pub struct Sources {
    pub archives: Vec<Archive>,
}

impl Sources {
    /// The archive a study name lies in, if any.
    pub fn archive_of(&mut self, name: &str) -> Option<&mut Archive> {
        self.archives.iter_mut().find(|a| a.find(name).is_some())
    }

    /// The bytes of a file of the study: an entry of one of its zips, else a file on disk.
    pub fn read(&mut self, name: &str) -> Result<Vec<u8>> {
        if let Some(a) = self.archive_of(name) {
            return a.read_named(name);
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            std::fs::read(name).map_err(|e| Error::io(name, e))
        }
        #[cfg(target_arch = "wasm32")]
        Err(Error::Invalid(format!("{name}: not in an opened zip")))
    }
}

/// How many bytes of a file (on disk or in a zip) are read first: headers end long before this
/// in every file met so far, and a file whose header does not is read whole.
const HEAD_BYTES: u64 = 256 << 10;

/// Open a study on disk: a folder (walked; its zips opened too), a zip, or a DICOMDIR (its
/// folder is walked). Files that cannot be read are skipped and listed; only a path that is
/// none of these is an error.
#[cfg(not(target_arch = "wasm32"))]
pub fn open(path: &std::path::Path) -> Result<(Study, Sources)> {
    use std::io::Read;
    let mut collector = Collector::new();
    let mut sources = Sources::default();
    let root = if path.is_dir() {
        path.to_path_buf()
    } else {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        if is_zip(&bytes) {
            let mut archive = Archive::open(&path.display().to_string(), bytes)?;
            collector.add_archive(&mut archive);
            sources.archives.push(archive);
            return Ok((collector.finish(), sources));
        }
        match read_file(&bytes, &path.display().to_string()) {
            Ok(FileKind::Dicomdir(_)) => path
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_else(|| ".".into()),
            _ => {
                return Err(Error::Invalid(format!(
                    "{}: --series takes a study folder, a zip of one, or its DICOMDIR; for \
                     one image file use --image",
                    path.display()
                )))
            }
        }
    };
    let mut paths = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                paths.push(p);
            }
        }
    }
    paths.sort();
    for p in paths {
        let name = p.display().to_string();
        let head = std::fs::File::open(&p).and_then(|f| {
            let mut head = Vec::new();
            f.take(HEAD_BYTES).read_to_end(&mut head).map(|_| head)
        });
        let head = match head {
            Ok(h) => h,
            Err(e) => {
                collector.skip(&name, e.to_string());
                continue;
            }
        };
        let whole = || std::fs::read(&p).map_err(|e| Error::io(&p, e));
        if is_zip(&head) {
            let bytes = if (head.len() as u64) < HEAD_BYTES {
                Ok(head)
            } else {
                whole()
            };
            match bytes.and_then(|bytes| Archive::open(&name, bytes)) {
                Ok(mut archive) => {
                    collector.add_archive(&mut archive);
                    sources.archives.push(archive);
                }
                Err(e) => collector.skip_error(&name, &e),
            }
            continue;
        }
        collector.add_head(&name, head, whole);
    }
    Ok((collector.finish(), sources))
}
