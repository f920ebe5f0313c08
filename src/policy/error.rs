//! Errors that teach: each names the file, line and column, shows the offending text, and says
//! what to write instead.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use super::examples::example_for;
use super::values::span_marker;

/// Everything that can go wrong while loading and resolving a policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// One or more problems inside policy files, each with its location.
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error("cannot read policy file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unknown profile `{name}`{hint}")]
    UnknownProfile { name: String, hint: String },
    /// A command-line flag with a bad value.
    #[error("{flag} {value:?}: {reason}")]
    Flag {
        flag: &'static str,
        value: String,
        reason: String,
    },
    /// `[launch]` does not allow the server command.
    #[error("{0}")]
    LaunchRefused(String),
    /// A path uses a variable that has no value here (e.g. `${HOME}` unset).
    #[error("{pattern}: `${{{variable}}}` has no value here{hint}")]
    Unresolved {
        pattern: String,
        variable: String,
        hint: String,
    },
}

impl From<Diagnostic> for PolicyError {
    fn from(d: Diagnostic) -> Self {
        PolicyError::Invalid(Diagnostics(vec![d]))
    }
}

/// Several diagnostics, shown one after the other.
#[derive(Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            // The caller prefixes the first with "error: "; the others get their own.
            if i > 0 {
                write!(f, "\nerror: ")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// One problem at one place in one file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub message: String,
    /// The file as the user named it (or `profile NAME`).
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    /// The whole offending line.
    pub source_line: String,
    /// How many characters to underline from `col`.
    pub width: usize,
    pub help: Option<String>,
}

impl Diagnostic {
    /// Locate `span` (byte offsets) in `text`; `None` points at the start of the file.
    pub fn at(
        file: &str,
        text: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let span = span.unwrap_or(0..0);
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let end = floor_char_boundary(text, span.end.clamp(start, text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let source_line = text[line_start..line_end].trim_end_matches('\r').to_owned();
        let line = text[..start].matches('\n').count() + 1;
        let col = text[line_start..start].chars().count() + 1;
        let width = text[start..end.min(line_end).max(start)]
            .chars()
            .count()
            .max(1);
        Diagnostic {
            message: message.into(),
            file: file.to_owned(),
            line,
            col,
            source_line,
            width,
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// `file:line:col`, as editors and terminals link it.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.col)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        writeln!(f, "{}", self.message)?;
        writeln!(f, "{pad}--> {}", self.location())?;
        writeln!(f, "{pad} |")?;
        writeln!(f, "{num} | {}", self.source_line)?;
        write!(
            f,
            "{pad} | {}{}",
            " ".repeat(self.col - 1),
            "^".repeat(self.width)
        )?;
        if let Some(help) = &self.help {
            for (i, line) in help.lines().enumerate() {
                let lead = if i == 0 { "= help: " } else { "        " };
                write!(f, "\n{pad} {lead}{line}")?;
            }
        }
        Ok(())
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Turn a toml/serde error into a diagnostic with a hint: the closest key for an unknown one, an
/// example of the right form for a wrong type.
pub fn from_toml(file: &str, text: &str, err: &toml::de::Error) -> Diagnostic {
    let (span, message) = match span_marker(err.message()) {
        Some((span, message)) => (Some(span), message.trim_end().to_owned()),
        None => (err.span(), err.message().trim_end().to_owned()),
    };
    let mut diag = Diagnostic::at(file, text, span.clone(), message.clone());
    let section = section_at(text, span.map_or(0, |s| s.start));
    if let Some((key, expected)) = unknown_field(&message) {
        let place = if section.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in [{section}]")
        };
        diag.message = format!("unknown key `{key}` {place}");
        let help = match closest(&key, expected.iter().map(String::as_str)) {
            Some(c) => format!("did you mean `{c}`?"),
            None => format!("known keys here: {}", expected.join(", ")),
        };
        return diag.with_help(help);
    }
    if message.starts_with("missing field") {
        return diag;
    }
    let key = key_on_line(&diag.source_line).unwrap_or_default();
    let path = if section.is_empty() {
        key.clone()
    } else {
        format!("{section}.{key}")
    };
    if !key.is_empty() {
        diag.message = format!("`{path}`: {message}");
    }
    if let Some(example) = example_for(&path).filter(|_| !key.is_empty()) {
        diag = diag.with_help(format!("write it like this:\n{example}"));
    }
    diag
}

/// `unknown field `x`, expected one of `a`, `b`` → ("x", ["a", "b"]).
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((key.to_owned(), expected))
}

/// The `[section]` (or `[[section]]`) header in effect at byte `pos`.
pub fn section_at(text: &str, pos: usize) -> String {
    let upto = &text[..floor_char_boundary(text, pos.min(text.len()))];
    upto.lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[\"") && l.contains(']'))
        .map(|l| {
            l.trim_matches(|c| c == '[' || c == ']')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

fn key_on_line(line: &str) -> Option<String> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)))
    .then(|| key.to_owned())
}

/// The candidate nearest to `word` by edit distance, if near enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::levenshtein(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_only() {
        assert_eq!(closest("wrte", ["read", "write", "exec"]), Some("write"));
        assert_eq!(
            closest("filesytem", ["filesystem", "network"]),
            Some("filesystem")
        );
        assert_eq!(closest("banana", ["read", "write"]), None);
    }

    #[test]
    fn diagnostic_points_at_line_and_column() {
        let text = "version = 1\n[network]\nmode = \"of\"\n";
        let start = text.find("\"of\"").unwrap();
        let d = Diagnostic::at("p.toml", text, Some(start..start + 4), "bad");
        assert_eq!((d.line, d.col, d.width), (3, 8, 4));
        assert!(d.to_string().contains("--> p.toml:3:8"));
        assert!(d.to_string().contains("3 | mode = \"of\"\n  |        ^^^^"));
    }

    #[test]
    fn section_at_finds_header() {
        let text = "version = 1\n[limits]\nmemory = 1\n";
        assert_eq!(section_at(text, text.len() - 2), "limits");
        assert_eq!(
            section_at("[tools.arguments.x]\na = 1", 22),
            "tools.arguments.x"
        );
    }
}
