//! The data set manifest of SPEC.md: one CSV row per disc,
//! `image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4`. Reading names the line and field at
//! fault; extra columns (such as the page's prediction columns) are ignored, so an exported
//! result file reads back as a manifest.
//!
//! Stage 3, at the root because the CLI, the trainer and the page all read and write it: uses
//! `image` and `disc` to turn rows into ROIs, and nothing later.

use crate::class::{Label, Level};
use crate::disc::geometry::Point;
use crate::error::{Error, Result};

pub const COLUMNS: [&str; 12] = [
    "image", "subject", "level", "label", "x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4",
];

/// One disc.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Image path relative to the manifest's folder.
    pub image: String,
    pub subject: String,
    pub level: Option<Level>,
    /// A class, `lesion` (type unknown) or nothing.
    pub label: Option<Label>,
    pub corners: [Point; 4],
}

/// The ROI of every row, in row order, decoding each image once however many discs it holds.
/// Images are read relative to `base` (the manifest's folder); `on_image` sees each image's
/// bytes once, in a fixed order (the trainer hashes them). Errors name the image.
#[cfg(not(target_arch = "wasm32"))]
pub fn rois(
    rows: &[Row],
    base: &std::path::Path,
    options: crate::image::decode::DecodeOptions,
    p: &crate::disc::roi::RoiParams,
    on_image: impl FnMut(&[u8]),
) -> Result<Vec<crate::disc::roi::Roi>> {
    rois_turning(rows, base, options, p, on_image, |_| false)
}

/// As [`rois`], with the ROIs of images for which `upside_down` says so cut from the image
/// turned upright ([`crate::disc::roi::Roi::extract_turned`]): a detector found them stored
/// upside down.
#[cfg(not(target_arch = "wasm32"))]
pub fn rois_turning(
    rows: &[Row],
    base: &std::path::Path,
    options: crate::image::decode::DecodeOptions,
    p: &crate::disc::roi::RoiParams,
    on_image: impl FnMut(&[u8]),
    upside_down: impl Fn(&str) -> bool,
) -> Result<Vec<crate::disc::roi::Roi>> {
    use crate::disc::roi::Roi;
    let mut out: Vec<Option<Roi>> = vec![None; rows.len()];
    each_slice(rows, base, options, on_image, |image, slice, idx| {
        let corners: Vec<[Point; 4]> = idx.iter().map(|&i| rows[i].corners).collect();
        let cut = if upside_down(image) {
            Roi::extract_turned(slice, &corners, p)
        } else {
            Roi::extract_many(slice, &corners, p)
        };
        let rois = cut.map_err(|e| match e {
            Error::Corners(m) => Error::Corners(format!("{image}: {m}")),
            e => e,
        })?;
        for (&i, roi) in idx.iter().zip(rois) {
            out[i] = Some(roi);
        }
        Ok(())
    })?;
    Ok(out.into_iter().flatten().collect())
}

/// Decode every image the rows name once, in name order, and hand `visit` the image's name,
/// its slice and the indices of its rows; `on_image` sees each file's bytes first.
pub fn each_slice(
    rows: &[Row],
    base: &std::path::Path,
    options: crate::image::decode::DecodeOptions,
    mut on_image: impl FnMut(&[u8]),
    mut visit: impl FnMut(&str, &crate::Slice, &[usize]) -> Result<()>,
) -> Result<()> {
    let mut by_image: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, r) in rows.iter().enumerate() {
        by_image.entry(r.image.as_str()).or_default().push(i);
    }
    for (image, idx) in by_image {
        let path = base.join(image);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        on_image(&bytes);
        let slice = crate::image::decode::decode(&bytes, &path.display().to_string(), options)?;
        visit(image, &slice, &idx)?;
    }
    Ok(())
}

/// A manifest line whose eight corner cells are all empty: its disc (the one at `level`, or
/// every lumbar disc of the image when the level is empty too) is to be found by the detector.
#[derive(Debug, Clone, PartialEq)]
pub struct ToDetect {
    /// Line of the manifest (the header is line 1), for messages.
    pub line: usize,
    pub image: String,
    pub subject: String,
    pub level: Option<Level>,
    pub label: Option<Label>,
}

/// One manifest line: a disc with its corners, or one whose corners the detector must find.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Disc(Row),
    Detect(ToDetect),
}

/// Parse manifest text. `file` only labels errors. Every row needs its corners; readers that
/// can detect discs use [`parse_entries`].
pub fn parse(file: &str, text: &str) -> Result<Vec<Row>> {
    parse_entries(file, text)?
        .into_iter()
        .map(|e| match e {
            Entry::Disc(r) => Ok(r),
            Entry::Detect(d) => Err(Error::Manifest {
                file: file.into(),
                row: d.line,
                field: "x1".into(),
                reason:
                    "empty: the corners are needed here (`endplate classify --manifest` detects \
                         the discs of rows whose eight corner cells are all empty)"
                        .into(),
            }),
        })
        .collect()
}

/// Parse manifest text, keeping rows whose eight corner cells are all empty as
/// [`Entry::Detect`]. `file` only labels errors.
pub fn parse_entries(file: &str, text: &str) -> Result<Vec<Entry>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let err = |row: usize, field: &str, reason: String| Error::Manifest {
        file: file.into(),
        row,
        field: field.into(),
        reason,
    };
    let header = reader
        .headers()
        .map_err(|e| err(1, "header", e.to_string()))?
        .clone();
    let mut index = [0usize; 12];
    for (i, col) in COLUMNS.iter().enumerate() {
        index[i] = header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(col))
            .ok_or_else(|| {
                err(
                    1,
                    col,
                    format!(
                        "column missing; the header must contain {}",
                        COLUMNS.join(",")
                    ),
                )
            })?;
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| err(line, "row", e.to_string()))?;
        let field = |c: usize| record.get(index[c]).unwrap_or("");
        let image = field(0).to_string();
        if image.is_empty() {
            return Err(err(
                line,
                "image",
                "empty; give the image path relative to the manifest".into(),
            ));
        }
        let opt = |c: usize| Some(field(c)).filter(|s| !s.is_empty());
        let level = opt(2)
            .map(str::parse::<Level>)
            .transpose()
            .map_err(|e| err(line, "level", e.to_string()))?;
        let label = opt(3)
            .map(str::parse::<Label>)
            .transpose()
            .map_err(|e| err(line, "label", e.to_string()))?;
        if (4..12).all(|c| field(c).is_empty()) {
            rows.push(Entry::Detect(ToDetect {
                line,
                image,
                subject: field(1).to_string(),
                level,
                label,
            }));
            continue;
        }
        let mut xy = [0.0f64; 8];
        for (k, v) in xy.iter_mut().enumerate() {
            let name = COLUMNS[4 + k];
            let s = field(4 + k);
            *v = s
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    err(
                        line,
                        name,
                        format!("`{s}` is not a number; corners are pixel coordinates like 123.5"),
                    )
                })?;
        }
        rows.push(Entry::Disc(Row {
            image,
            subject: field(1).to_string(),
            level,
            label,
            corners: std::array::from_fn(|c| Point::new(xy[2 * c], xy[2 * c + 1])),
        }));
    }
    Ok(rows)
}

/// The optional `spacing_mm` column, one entry per row (`None` where the column is absent or
/// the cell empty): pixel spacing for formats that do not carry it (PNG, JPEG), so detector
/// errors can be given in millimetres.
pub fn spacing_column(file: &str, text: &str) -> Result<Vec<Option<f64>>> {
    let column = number_column(
        file,
        text,
        "spacing_mm",
        |v| v > 0.0,
        "a positive number of millimetres per pixel",
    )?;
    Ok(column.unwrap_or_else(|| vec![None; data_rows(text)]))
}

/// An extra numeric column by name, one entry per data row (`None` where the cell is empty),
/// or `None` when the header has no such column. A cell that is not a finite number `valid`
/// accepts is refused with its row and `what` the column must hold.
pub fn number_column(
    file: &str,
    text: &str,
    name: &str,
    valid: impl Fn(f64) -> bool,
    what: &str,
) -> Result<Option<Vec<Option<f64>>>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let col = reader
        .headers()
        .map_err(|e| Error::Manifest {
            file: file.into(),
            row: 1,
            field: "header".into(),
            reason: e.to_string(),
        })?
        .iter()
        .position(|h| h.eq_ignore_ascii_case(name));
    let Some(col) = col else {
        return Ok(None);
    };
    reader
        .records()
        .enumerate()
        .map(|(i, r)| {
            let r = r.map_err(|e| Error::Manifest {
                file: file.into(),
                row: i + 2,
                field: "row".into(),
                reason: e.to_string(),
            })?;
            match r.get(col).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => s
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && valid(*v))
                    .map(Some)
                    .ok_or_else(|| Error::Manifest {
                        file: file.into(),
                        row: i + 2,
                        field: name.into(),
                        reason: format!("`{s}` is not {what}"),
                    }),
            }
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Data rows of a manifest text (records after the header).
fn data_rows(text: &str) -> usize {
    csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes())
        .records()
        .count()
}

/// Write rows as manifest CSV (the ids of SPEC.md, corners with 0.01 px precision), with any
/// extra columns appended per row.
pub fn write(rows: &[Row], extra_header: &[&str], extra: &[Vec<String>]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = COLUMNS.to_vec();
    header.extend_from_slice(extra_header);
    w.write_record(&header).expect("writing to memory");
    for (i, r) in rows.iter().enumerate() {
        let mut rec = vec![
            r.image.clone(),
            r.subject.clone(),
            r.level.map(|l| l.id().to_string()).unwrap_or_default(),
            r.label.map(|l| l.id().to_string()).unwrap_or_default(),
        ];
        for p in &r.corners {
            rec.push(format!("{}", (p.x * 100.0).round() / 100.0));
            rec.push(format!("{}", (p.y * 100.0).round() / 100.0));
        }
        if let Some(e) = extra.get(i) {
            rec.extend(e.iter().cloned());
        }
        w.write_record(&rec).expect("writing to memory");
    }
    String::from_utf8(w.into_inner().expect("flush to memory")).expect("csv is utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::Class;

    #[test]
    fn round_trips_and_accepts_display_names() {
        let text = "image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4,extra\n\
                    a.png,s1,L4-L5,Schmorl's node,1,2,3,4,5,6,7,8,zzz\n\
                    b.dcm,s2,L5S1,,10.5,20,30,40,50,60,70,80,\n\
                    c.png,s3,L1L2,lesion,1,2,3,4,5,6,7,8,\n";
        let rows = parse("m.csv", text).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].label, Some(Label::Lesion));
        assert_eq!(rows[0].label, Some(Label::Class(Class::Schmorl)));
        assert_eq!(rows[0].level, Some(Level::L4L5));
        assert_eq!(rows[1].label, None);
        assert_eq!(rows[1].corners[0], Point::new(10.5, 20.0));
        let again = parse("m2.csv", &write(&rows, &[], &[])).unwrap();
        assert_eq!(again, rows);
    }

    #[test]
    fn errors_name_line_and_field() {
        let text = "image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4\na.png,s,L1L2,fracture,1,2,3,4,5,6,7,8\n";
        let e = parse("m.csv", text).unwrap_err().to_string();
        assert!(
            e.contains("m.csv, row 2, field `label`") && e.contains("fracture"),
            "{e}"
        );
        let text =
            "image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4\na.png,s,L1L2,,1,2,3,4,5,six,7,8\n";
        let e = parse("m.csv", text).unwrap_err().to_string();
        assert!(e.contains("field `y3`") && e.contains("six"), "{e}");
        let e = parse("m.csv", "image,label\n").unwrap_err().to_string();
        assert!(e.contains("`subject`"), "{e}");
        // All eight corners empty: a disc to detect, refused where corners are needed.
        let text = "image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4\na.png,s,L3L4,,,,,,,,,\nb.png,t,,,,,,,,,,\n";
        let e = parse("m.csv", text).unwrap_err().to_string();
        assert!(e.contains("row 2") && e.contains("detects"), "{e}");
        let entries = parse_entries("m.csv", text).unwrap();
        assert!(
            matches!(&entries[0], Entry::Detect(d) if d.level == Some(Level::L3L4) && d.line == 2)
        );
        assert!(matches!(&entries[1], Entry::Detect(d) if d.level.is_none() && d.subject == "t"));
        // Some corners empty is still an error naming the first.
        let text = "image,subject,level,label,x1,y1,x2,y2,x3,y3,x4,y4\na.png,s,L3L4,,1,2,,,,,,\n";
        let e = parse_entries("m.csv", text).unwrap_err().to_string();
        assert!(e.contains("`x2`"), "{e}");
    }
}
