//! Replacing byte ranges of a text: the JSON rewriter changes only the values it must and keeps
//! every other byte (comments, indentation, key order) as the user left it.

/// Replace `start..end` with `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// Apply non-overlapping splices (in any order) to `text`.
pub fn apply(text: &str, mut splices: Vec<Splice>) -> String {
    splices.sort_by_key(|s| s.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for splice in splices {
        // The rewriter never produces overlaps; should one slip through, keep the text intact
        // rather than corrupt the user's config.
        if splice.start < at || splice.end > text.len() {
            continue;
        }
        out.push_str(&text[at..splice.start]);
        out.push_str(&splice.text);
        at = splice.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_inserts_and_deletes() {
        let splices = vec![
            Splice {
                start: 6,
                end: 11,
                text: "guard".into(),
            },
            Splice {
                start: 0,
                end: 0,
                text: ">".into(),
            },
            Splice {
                start: 11,
                end: 12,
                text: String::new(),
            },
        ];
        assert_eq!(apply("hello world!", splices), ">hello guard");
    }
}
