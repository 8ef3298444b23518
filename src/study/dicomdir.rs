//! DICOMDIR, the index a CD, DVD or PACS export carries: its directory records name every image
//! file (ReferencedFileID, path components relative to the DICOMDIR's folder). A study read
//! with one reports the files it lists that are not there (a partial copy, a CD read with the
//! wrong case), instead of silently showing a series with slices missing.
//!
//! The image files are still read from the folder itself, listed or not: a DICOMDIR written
//! before files were added, or after some were removed, would otherwise hide real series. The
//! hierarchy of records (patient, study, series, image) is not needed for that and is not
//! followed.

use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use dicom_object::FileDicomObject;

/// The referenced files of a DICOMDIR already opened, `/`-joined. The reason it is skipped when
/// it has no directory records at all.
pub fn listing(
    obj: &FileDicomObject<InMemDicomObject>,
) -> std::result::Result<Vec<String>, String> {
    let records = obj
        .element(tags::DIRECTORY_RECORD_SEQUENCE)
        .ok()
        .and_then(|e| e.items().map(|items| items.to_vec()))
        .ok_or_else(|| {
            "a DICOMDIR without directory records (DirectoryRecordSequence); the folder's \
             files are read without it"
                .to_string()
        })?;
    let mut files = Vec::new();
    for record in &records {
        let Some(parts) = record
            .element(tags::REFERENCED_FILE_ID)
            .ok()
            .and_then(|e| e.to_multi_str().ok())
        else {
            continue; // patient, study and series records name no file
        };
        let path: Vec<&str> = parts
            .iter()
            .map(|p| p.trim_matches(['\0', ' ']))
            .filter(|p| !p.is_empty())
            .collect();
        if !path.is_empty() {
            files.push(path.join("/"));
        }
    }
    Ok(files)
}

/// The key a file is matched by: `/`-separated, lower case, without ISO 9660's version suffix
/// (`;1`) or trailing dot, since CD file systems and their copies change all three.
pub fn match_key(path: &str) -> String {
    path.replace('\\', "/")
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .map(|p| {
            let p = p.split(';').next().unwrap_or(p);
            p.trim_end_matches('.').to_lowercase()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The folder part of a study name (`""` for a bare name).
pub fn folder_of(name: &str) -> &str {
    let name = name.trim_end_matches(['/', '\\']);
    match name.rfind(['/', '\\']) {
        Some(i) => &name[..i],
        None => "",
    }
}

/// Where a DICOMDIR's entry should be, as a study name beside it.
pub fn beside(dicomdir: &str, path: &str) -> String {
    match folder_of(dicomdir) {
        "" => path.to_string(),
        folder => format!("{folder}/{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_separators_and_versions() {
        assert_eq!(match_key("DICOM\\ST000\\IM0001;1"), "dicom/st000/im0001");
        assert_eq!(match_key("./dicom/st000/im0001."), "dicom/st000/im0001");
        assert_eq!(folder_of("cd/DICOMDIR"), "cd");
        assert_eq!(folder_of("DICOMDIR"), "");
        assert_eq!(beside("a.zip/DICOMDIR", "DICOM/I1"), "a.zip/DICOM/I1");
    }
}
