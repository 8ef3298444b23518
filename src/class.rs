//! The four lesion classes and the five lumbar levels, with the lenient parsing SPEC.md asks for
//! (display names, obvious spellings, any case) and the canonical ids that every writer uses.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Lesion class in model output order (index = logit position).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Normal = 0,
    Wavy = 1,
    Notched = 2,
    Schmorl = 3,
}

impl Class {
    pub const ALL: [Class; 4] = [Class::Normal, Class::Wavy, Class::Notched, Class::Schmorl];
    pub const COUNT: usize = 4;

    pub fn index(self) -> usize {
        self as usize
    }
    pub fn from_index(i: usize) -> Option<Class> {
        Class::ALL.get(i).copied()
    }
    pub fn id(self) -> &'static str {
        match self {
            Class::Normal => "normal",
            Class::Wavy => "wavy",
            Class::Notched => "notched",
            Class::Schmorl => "schmorl",
        }
    }
    /// The class with the highest score (the first on a tie).
    pub fn argmax(scores: &[f32; 4]) -> Class {
        let best = (0..4).fold(0, |b, k| if scores[k] > scores[b] { k } else { b });
        Class::ALL[best]
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Class::Normal => "Normal",
            Class::Wavy => "Wavy/irregular",
            Class::Notched => "Notched",
            Class::Schmorl => "Schmorl's node",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Lowercase and keep only letters, so "Schmorl's node", "SCHMORL" and "wavy / irregular" meet
/// the same spelling.
fn letters(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl FromStr for Class {
    type Err = Error;
    fn from_str(s: &str) -> Result<Class> {
        let key = letters(s);
        let class = match key.as_str() {
            "normal" | "0" => Class::Normal,
            "wavy" | "irregular" | "wavyirregular" | "1" => Class::Wavy,
            "notched" | "notch" | "2" => Class::Notched,
            "schmorl" | "schmorls" | "schmorlnode" | "schmorlsnode" | "3" => Class::Schmorl,
            _ => {
                return Err(Error::Unknown {
                    what: "label",
                    value: s.to_string(),
                    expected: "normal, wavy (Wavy/irregular), notched, schmorl (Schmorl's node)"
                        .into(),
                })
            }
        };
        Ok(class)
    }
}

/// What a manifest row says about a disc: one of the four classes, or SPEC.md's `lesion` (an
/// endplate lesion of unknown type, as real gradings such as SPIDER's give it). A label is the
/// set of classes it admits, so a lesion disc teaches the network only that it is not normal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Label {
    Class(Class),
    Lesion,
}

impl Label {
    /// Stratification and balancing key: the class index, 4 for `lesion`.
    pub const KEYS: usize = 5;

    pub fn id(self) -> &'static str {
        match self {
            Label::Class(c) => c.id(),
            Label::Lesion => "lesion",
        }
    }
    pub fn key(self) -> usize {
        match self {
            Label::Class(c) => c.index(),
            Label::Lesion => 4,
        }
    }
    /// The four-class label, when the row has one.
    pub fn class(self) -> Option<Class> {
        match self {
            Label::Class(c) => Some(c),
            Label::Lesion => None,
        }
    }
    /// Whether the disc has an endplate lesion of any type (the binary truth of
    /// lesion-vs-normal).
    pub fn is_lesion(self) -> bool {
        self != Label::Class(Class::Normal)
    }
    /// Whether predicting `c` agrees with this label.
    pub fn admits(self, c: Class) -> bool {
        match self {
            Label::Class(k) => k == c,
            Label::Lesion => c != Class::Normal,
        }
    }
}

impl From<Class> for Label {
    fn from(c: Class) -> Label {
        Label::Class(c)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Label {
    type Err = Error;
    fn from_str(s: &str) -> Result<Label> {
        match letters(s).as_str() {
            "lesion" | "abnormal" | "endplatechanges" => Ok(Label::Lesion),
            _ => s
                .parse::<Class>()
                .map(Label::Class)
                .map_err(|_| Error::Unknown {
                    what: "label",
                    value: s.to_string(),
                    expected: "normal, wavy (Wavy/irregular), notched, schmorl (Schmorl's node), \
                           or lesion (a lesion of unknown type)"
                        .into(),
                }),
        }
    }
}

/// Lumbar disc level, cranial to caudal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    L1L2,
    L2L3,
    L3L4,
    L4L5,
    L5S1,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::L1L2,
        Level::L2L3,
        Level::L3L4,
        Level::L4L5,
        Level::L5S1,
    ];
    pub fn id(self) -> &'static str {
        match self {
            Level::L1L2 => "L1L2",
            Level::L2L3 => "L2L3",
            Level::L3L4 => "L3L4",
            Level::L4L5 => "L4L5",
            Level::L5S1 => "L5S1",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Level {
    type Err = Error;
    fn from_str(s: &str) -> Result<Level> {
        let key = letters(s).to_ascii_uppercase();
        Level::ALL
            .into_iter()
            .find(|l| l.id() == key)
            .ok_or_else(|| Error::Unknown {
                what: "level",
                value: s.to_string(),
                expected: "L1L2, L2L3, L3L4, L4L5, L5S1 (L4-L5 and l4l5 are read too)".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_accept_display_names_and_spellings() {
        for (s, c) in [
            ("Normal", Class::Normal),
            ("wavy/irregular", Class::Wavy),
            ("Wavy/Irregular", Class::Wavy),
            ("NOTCHED", Class::Notched),
            ("Schmorl's node", Class::Schmorl),
            ("schmorl", Class::Schmorl),
        ] {
            assert_eq!(s.parse::<Class>().unwrap(), c, "{s}");
        }
        let err = "fracture".parse::<Class>().unwrap_err().to_string();
        assert!(err.contains("fracture") && err.contains("schmorl"), "{err}");
    }

    #[test]
    fn lesion_is_a_label_that_admits_every_lesion_class() {
        assert_eq!("Lesion".parse::<Label>().unwrap(), Label::Lesion);
        assert_eq!(
            "Schmorl's node".parse::<Label>().unwrap(),
            Label::Class(Class::Schmorl)
        );
        assert!(Label::Lesion.admits(Class::Wavy) && !Label::Lesion.admits(Class::Normal));
        assert!(
            !Label::Class(Class::Normal).is_lesion() && Label::Class(Class::Notched).is_lesion()
        );
        assert!(
            "lesion".parse::<Class>().is_err(),
            "a lesion is never a prediction"
        );
        let err = "fracture".parse::<Label>().unwrap_err().to_string();
        assert!(err.contains("fracture") && err.contains("lesion"), "{err}");
    }

    #[test]
    fn levels_parse_with_separators() {
        assert_eq!("L4-L5".parse::<Level>().unwrap(), Level::L4L5);
        assert_eq!("l5s1".parse::<Level>().unwrap(), Level::L5S1);
        assert!("L6S1".parse::<Level>().is_err());
    }
}
