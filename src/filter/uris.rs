//! Resource URIs and path arguments, normalised before any pattern sees them. Traversal is
//! refused in every disguise rather than resolved: a server may decode once more, or resolve
//! differently, than the guard would.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("the URI has no scheme")]
    NoScheme,
    #[error("the URI contains a NUL byte")]
    Nul,
    #[error("the URI contains a control character")]
    Control,
    #[error("the URI contains a backslash")]
    Backslash,
    #[error("the URI has a bad percent-escape")]
    BadEscape,
    #[error("the URI decodes to invalid (e.g. overlong) UTF-8")]
    InvalidUtf8,
    #[error("the URI encodes a path separator (%2f)")]
    EncodedSeparator,
    #[error("the URI is percent-encoded twice")]
    DoubleEncoded,
    #[error("the URI climbs out of its directory (`..`)")]
    Traversal,
    #[error("a file:// URI must name a local absolute path")]
    NotLocalFile,
    #[error("`{0}` is not under an allowed root")]
    OutsideRoots(String),
    #[error("the path is not absolute")]
    Relative,
}

/// `uri` with a lower-case scheme and its percent-escapes decoded, or why it is refused.
pub fn normalize(uri: &str) -> Result<String, UriError> {
    check_raw(uri)?;
    let colon = uri.find(':').ok_or(UriError::NoScheme)?;
    let (scheme, rest) = uri.split_at(colon);
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(UriError::NoScheme);
    }
    let lower = rest.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return Err(UriError::EncodedSeparator);
    }
    let decoded = percent_decode(rest)?;
    check_raw(&decoded)?;
    let lower = decoded.to_ascii_lowercase();
    // Anything still escaped after one decoding (`%252e`, `%25+2e`) is meant for a second one.
    if lower.contains('%') {
        return Err(UriError::DoubleEncoded);
    }
    // Only the path (before any query or fragment) is a path.
    let path_part = decoded.split(['?', '#']).next().unwrap_or("");
    if path_part.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(UriError::Traversal);
    }
    Ok(format!("{}{decoded}", scheme.to_ascii_lowercase()))
}

fn check_raw(text: &str) -> Result<(), UriError> {
    for c in text.chars() {
        match c {
            '\0' => return Err(UriError::Nul),
            '\\' => return Err(UriError::Backslash),
            c if c.is_control() => return Err(UriError::Control),
            _ => {}
        }
    }
    Ok(())
}

fn percent_decode(text: &str) -> Result<String, UriError> {
    if !text.contains('%') {
        return Ok(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(UriError::BadEscape)?;
            // Exactly two hex digits: `from_str_radix` would also take a sign (`%+2e`).
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(UriError::BadEscape);
            }
            let hex = std::str::from_utf8(hex).map_err(|_| UriError::BadEscape)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UriError::BadEscape)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // Rust's UTF-8 decoder rejects overlong forms (`%c0%ae` for `.`), which is the point.
    String::from_utf8(out).map_err(|_| UriError::InvalidUtf8)
}

/// The local path of a normalised `file://` URI (`file:///p` or `file://localhost/p`).
pub fn file_path(normalized: &str) -> Option<Result<PathBuf, UriError>> {
    let rest = normalized.strip_prefix("file:")?;
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let path = match rest.strip_prefix("//") {
        Some(after) => match after.find('/') {
            Some(0) => after,
            Some(i) if after[..i].eq_ignore_ascii_case("localhost") => &after[i..],
            _ => return Some(Err(UriError::NotLocalFile)),
        },
        None if rest.starts_with('/') => rest,
        None => return Some(Err(UriError::NotLocalFile)),
    };
    Some(Ok(PathBuf::from(path)))
}

/// Check a path argument: absolute, no `..`, no NUL, under one of `roots` (component-wise).
/// A `file://` URI is accepted as its path.
pub fn check_path_under(value: &str, roots: &[PathBuf]) -> Result<(), UriError> {
    let path = if value.starts_with("file:") {
        let normalized = normalize(value)?;
        file_path(&normalized).unwrap_or(Err(UriError::NotLocalFile))?
    } else {
        check_raw(value)?;
        PathBuf::from(value)
    };
    let path = clean_absolute(&path)?;
    if roots.is_empty() || roots.iter().any(|r| path.starts_with(r)) {
        Ok(())
    } else {
        Err(UriError::OutsideRoots(path.display().to_string()))
    }
}

/// `path` without `.` components; refuses relative paths and `..`.
pub fn clean_absolute(path: &Path) -> Result<PathBuf, UriError> {
    if !path.is_absolute() {
        return Err(UriError::Relative);
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => return Err(UriError::Traversal),
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_normalise_scheme_and_escapes() {
        assert_eq!(
            normalize("FILE:///srv/a%20b.txt").unwrap(),
            "file:///srv/a b.txt"
        );
        assert_eq!(normalize("memory://notes/1").unwrap(), "memory://notes/1");
    }

    #[test]
    fn uris_refuse_traversal_in_every_disguise() {
        let cases = [
            ("file:///srv/../etc/passwd", UriError::Traversal),
            ("file:///srv/%2e%2e/etc/passwd", UriError::Traversal),
            ("file:///srv/%2E%2E/etc/passwd", UriError::Traversal),
            ("file:///srv/..%2fetc/passwd", UriError::EncodedSeparator),
            ("file:///srv/%252e%252e/etc", UriError::DoubleEncoded),
            ("file:///srv\\..\\etc", UriError::Backslash),
            ("file:///srv/a%5c..", UriError::EncodedSeparator),
            ("file:///srv/a\0b", UriError::Nul),
            ("file:///srv/a%00b", UriError::Nul),
            ("file:///srv/%c0%ae%c0%ae/etc", UriError::InvalidUtf8),
            ("file:///srv/./x", UriError::Traversal),
            ("no-scheme", UriError::NoScheme),
        ];
        for (uri, want) in cases {
            assert_eq!(normalize(uri), Err(want), "{uri}");
        }
    }

    #[test]
    fn uris_file_paths_under_roots() {
        let roots = [PathBuf::from("/srv/docs")];
        assert!(check_path_under("/srv/docs/a.txt", &roots).is_ok());
        assert!(check_path_under("file:///srv/docs/a.txt", &roots).is_ok());
        assert!(check_path_under("file://localhost/srv/docs/a", &roots).is_ok());
        assert!(check_path_under("/srv/docs-evil/a", &roots).is_err());
        assert!(check_path_under("/srv/docs/../x", &roots).is_err());
        assert!(check_path_under("docs/a", &roots).is_err());
        assert!(check_path_under("file://evil.example/srv/docs/a", &roots).is_err());
    }
}
