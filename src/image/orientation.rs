//! Which way a slice lies against the patient, from DICOM's ImageOrientationPatient (the row,
//! then the column, direction cosines in the patient's LPS axes: x to the left, y to the back,
//! z to the head). The detector and the classifier learnt sagittal slices shown with the head at
//! the top and anterior on the left; a file that says otherwise is read as stored, and the user
//! is told what to do, since a mirrored or quarter-turned slice gives no disc at its level.

use serde::Serialize;

/// Which way a slice or series is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plane {
    Sagittal,
    Coronal,
    Axial,
    Oblique,
    Unknown,
}

impl Plane {
    /// The plane whose normal is within 30 degrees of the orientation's normal.
    pub fn of(orientation: Option<[f64; 6]>) -> Plane {
        let Some(n) = orientation.and_then(normal) else {
            return Plane::Unknown;
        };
        let cos30 = 30f64.to_radians().cos();
        if n[0].abs() >= cos30 {
            Plane::Sagittal
        } else if n[1].abs() >= cos30 {
            Plane::Coronal
        } else if n[2].abs() >= cos30 {
            Plane::Axial
        } else {
            Plane::Oblique
        }
    }

    fn name(self) -> &'static str {
        match self {
            Plane::Sagittal => "sagittal",
            Plane::Coronal => "coronal",
            Plane::Axial => "axial",
            Plane::Oblique => "oblique",
            Plane::Unknown => "unknown",
        }
    }
}

/// The unit normal (row x column) of an orientation, if it is one.
pub fn normal(o: [f64; 6]) -> Option<[f64; 3]> {
    let (r, c) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    let n = [
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    ];
    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    (len > 1e-6 && len.is_finite()).then(|| n.map(|v| v / len))
}

/// What to tell the user when the file's orientation says the slice is not shown as the models
/// learnt it: not sagittal, turned a quarter, or mirrored (anterior on the right). `None` for a
/// slice shown as learnt, for one stored upside down (the detector turns those itself) and for
/// a file that does not say.
pub fn warning(orientation: Option<[f64; 6]>) -> Option<String> {
    let o = orientation?;
    let plane = Plane::of(Some(o));
    if plane == Plane::Unknown {
        return None;
    }
    if plane != Plane::Sagittal {
        return Some(format!(
            "the file says this is {} {} slice, not a sagittal one: the detector and the \
             classifier read sagittal slices of the lumbar spine",
            if plane == Plane::Axial || plane == Plane::Oblique {
                "an"
            } else {
                "a"
            },
            plane.name()
        ));
    }
    let row = [o[0], o[1], o[2]];
    if row[2].abs() > row[1].abs() {
        let head = if row[2] > 0.0 { "right" } else { "left" };
        return Some(format!(
            "the file says this slice is turned a quarter (the head on the {head}): the detector \
             and the classifier learnt the head at the top; turn the slice upright before \
             opening it"
        ));
    }
    (row[1] < 0.0).then(|| {
        "the file says anterior is on the right (the slice is mirrored left to right): the \
         detector and the classifier learnt anterior on the left and find no disc right on a \
         mirrored slice; mirror it before opening it, or place the corners by hand"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_from_orientation() {
        assert_eq!(Plane::of(Some([0., 1., 0., 0., 0., -1.])), Plane::Sagittal);
        assert_eq!(Plane::of(Some([1., 0., 0., 0., 0., -1.])), Plane::Coronal);
        assert_eq!(Plane::of(Some([1., 0., 0., 0., 1., 0.])), Plane::Axial);
        let c = 45f64.to_radians().cos();
        assert_eq!(Plane::of(Some([c, c, 0., 0., 0., -1.])), Plane::Oblique);
        assert_eq!(Plane::of(Some([0.; 6])), Plane::Unknown);
        assert_eq!(Plane::of(None), Plane::Unknown);
    }

    #[test]
    fn only_slices_shown_otherwise_than_learnt_are_warned_about() {
        // Rows to the back, columns to the feet: head at the top, anterior on the left.
        assert_eq!(warning(Some([0., 1., 0., 0., 0., -1.])), None);
        // A little oblique, still shown as learnt.
        assert_eq!(warning(Some([0.1, 0.99, 0.05, 0.02, 0.05, -0.99])), None);
        // Upside down: the detector turns it itself.
        assert_eq!(warning(Some([0., 1., 0., 0., 0., 1.])), None);
        assert_eq!(warning(None), None);
        let mirrored = warning(Some([0., -1., 0., 0., 0., -1.])).unwrap();
        assert!(mirrored.contains("anterior is on the right"), "{mirrored}");
        let quarter = warning(Some([0., 0., -1., 0., 1., 0.])).unwrap();
        assert!(quarter.contains("head on the left"), "{quarter}");
        let axial = warning(Some([1., 0., 0., 0., 1., 0.])).unwrap();
        assert!(axial.contains("an axial slice"), "{axial}");
        let coronal = warning(Some([1., 0., 0., 0., 0., -1.])).unwrap();
        assert!(coronal.contains("a coronal slice"), "{coronal}");
    }
}
