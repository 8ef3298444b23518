//! A zip file as a study: the page and the CLI take a study as one zip, as PACS exports and
//! e-mailed studies come. Entries are read one at a time, when asked, from the zip held in
//! memory (the page's worker keeps it to open other slices later).
//!
//! A zip is a list of claims about sizes, and a zip bomb is a small file whose claims (or
//! whose compressed streams) unpack to gigabytes. Every limit is checked before the
//! decompressor allocates: the entry count and the sum of the sizes the central directory
//! declares at [`Archive::open`], and each entry's actual output against its declared size
//! while it is read, so a lying header cannot make one entry unpack to more than it said.

use crate::error::{Error, Result};
use std::io::{Cursor, Read};

/// What a zip may hold before it is refused.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Entries (files and folders) in the central directory.
    pub entries: usize,
    /// Sum of the declared uncompressed sizes of all entries (bytes).
    pub total_bytes: u64,
    /// Declared uncompressed size of one entry (bytes).
    pub entry_bytes: u64,
}

impl Limits {
    /// A lumbar MRI study is a few hundred files and a few hundred MB; a whole CD of CT and MRI
    /// is some thousands of files and up to a gigabyte or two. A single DICOM file above 512 MB
    /// would exceed the decoder's own pixel limit anyway.
    pub const DEFAULT: Limits = Limits {
        entries: 20_000,
        total_bytes: 2 << 30,
        entry_bytes: 512 << 20,
    };
}

/// Does `bytes` start like a zip file (a local file header, or an empty archive's end record)?
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// One file inside the zip.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry's path inside the zip, `/`-separated.
    pub path: String,
    /// Its declared uncompressed size.
    pub size: u64,
    index: usize,
}

/// An opened zip: its file entries (folders left out) and the bytes to read them from.
pub struct Archive {
    name: String,
    zip: zip::ZipArchive<Cursor<Vec<u8>>>,
    entries: Vec<Entry>,
    limits: Limits,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("name", &self.name)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl Archive {
    /// Open a zip with the default limits. `name` labels the archive in messages and prefixes
    /// its entries' study names (`study.zip/DICOM/IM1`).
    pub fn open(name: &str, bytes: Vec<u8>) -> Result<Archive> {
        Self::open_with(name, bytes, Limits::DEFAULT)
    }

    pub fn open_with(name: &str, bytes: Vec<u8>, limits: Limits) -> Result<Archive> {
        let bad = |reason: String| Error::Invalid(format!("{name}: {reason}"));
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| bad(format!("not a readable zip file ({e})")))?;
        if zip.len() > limits.entries {
            return Err(bad(format!(
                "the zip lists {} entries, more than the {} a study may have; unzip it and \
                 open the study's folder instead",
                zip.len(),
                limits.entries
            )));
        }
        let mut entries = Vec::new();
        let mut total = 0u64;
        for index in 0..zip.len() {
            let file = zip
                .by_index_raw(index)
                .map_err(|e| bad(format!("entry {index} cannot be read ({e})")))?;
            if file.is_dir() {
                continue;
            }
            let path = normalise(file.name());
            let size = file.size();
            if size > limits.entry_bytes {
                return Err(bad(format!(
                    "entry {path} would unpack to {} MB, more than the {} MB one file may have \
                     (a damaged or hostile zip)",
                    size >> 20,
                    limits.entry_bytes >> 20
                )));
            }
            total = total.saturating_add(size);
            if total > limits.total_bytes {
                return Err(bad(format!(
                    "its entries would unpack to more than {} MB (a zip bomb, or a study too \
                     large to open at once); unzip it and open the series' folder instead",
                    limits.total_bytes >> 20
                )));
            }
            entries.push(Entry { path, size, index });
        }
        Ok(Archive {
            name: name.to_string(),
            zip,
            entries,
            limits,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file entries, in the zip's order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// An entry's name in a study: the archive's name, `/`, the path inside.
    pub fn study_name(&self, entry: &Entry) -> String {
        format!("{}/{}", self.name, entry.path)
    }

    /// The entry a study name refers to, if it lies in this archive.
    pub fn find(&self, study_name: &str) -> Option<&Entry> {
        let path = study_name.strip_prefix(&self.name)?.strip_prefix('/')?;
        self.entries.iter().find(|e| e.path == path)
    }

    /// Unpack one entry, never to more than its declared size (and the per-entry limit).
    pub fn read(&mut self, entry: &Entry) -> Result<Vec<u8>> {
        self.read_head(entry, u64::MAX)
    }

    /// The first `max` bytes of an entry, or all of it when it is no longer: enough for a DICOM
    /// header without unpacking the pixel data behind it. Read whole, an entry is checked
    /// against the size it declares.
    pub fn read_head(&mut self, entry: &Entry, max: u64) -> Result<Vec<u8>> {
        let label = format!("{}/{}", self.name, entry.path);
        let bad = |reason: String| Error::Invalid(format!("{label}: {reason}"));
        let file = self
            .zip
            .by_index(entry.index)
            .map_err(|e| bad(unsupported(&e)))?;
        let cap = entry.size.min(self.limits.entry_bytes);
        let whole = max >= cap;
        // One byte past the declared size tells a lying entry.
        let want = if whole { cap + 1 } else { max };
        let mut out = Vec::with_capacity(want.min(64 << 20) as usize);
        file.take(want)
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("cannot be unpacked ({e})")))?;
        if whole && out.len() as u64 > cap {
            return Err(bad(format!(
                "unpacks to more than the {cap} bytes its header declares (a damaged or \
                 hostile zip)"
            )));
        }
        Ok(out)
    }

    /// [`Archive::read`] by study name.
    pub fn read_named(&mut self, study_name: &str) -> Result<Vec<u8>> {
        let entry = self.find(study_name).cloned().ok_or_else(|| {
            Error::Invalid(format!("{study_name}: not an entry of {}", self.name))
        })?;
        self.read(&entry)
    }
}

/// Why an entry cannot be unpacked, with what to do about it.
fn unsupported(e: &zip::result::ZipError) -> String {
    match e {
        zip::result::ZipError::UnsupportedArchive(what) if what.contains("assword") => {
            "encrypted; unzip it with its password and open the folder".into()
        }
        zip::result::ZipError::UnsupportedArchive(what) => format!(
            "{what}; endplate reads zips compressed with deflate or stored (the usual kinds): \
             re-zip it, or unzip it and open the folder"
        ),
        other => format!("cannot be unpacked ({other})"),
    }
}

/// A zip path with `/` separators and no leading `./` or `/`.
fn normalise(path: &str) -> String {
    let p = path.replace('\\', "/");
    let mut p = p.as_str();
    loop {
        if let Some(rest) = p.strip_prefix("./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix('/') {
            p = rest;
        } else {
            break;
        }
    }
    p.to_string()
}
