//! URI normalisation and path-under-root checks: any text. An accepted URI has no `.`/`..`
//! path segment, no control character or backslash, and stays so if the server decodes its
//! escapes once more; an accepted path argument lies under a root, component-wise.
#![no_main]

use std::path::{Component, Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use mcp_guard::filter::uris::{check_path_under, clean_absolute, file_path, normalize};

/// One more lenient decoding pass, as a careless server might do.
fn decode_again(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = b
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn assert_no_traversal(path_part: &[u8], what: &str, uri: &str) {
    for seg in path_part.split(|&c| c == b'/') {
        assert!(
            seg != b".." && seg != b".",
            "{what} has a dot segment: {uri:?}"
        );
    }
    assert!(
        !path_part.contains(&b'\\'),
        "{what} has a backslash: {uri:?}"
    );
    assert!(!path_part.contains(&0), "{what} has a NUL: {uri:?}");
}

fuzz_target!(|text: &str| {
    if let Ok(n) = normalize(text) {
        let path_part = n.split(['?', '#']).next().unwrap_or("");
        assert_no_traversal(path_part.as_bytes(), "normalised URI", text);
        assert!(
            !n.chars().any(char::is_control),
            "control char kept: {text:?}"
        );
        let again = decode_again(path_part);
        assert_no_traversal(&again, "URI decoded once more", text);
        if let Some(Ok(p)) = file_path(&n) {
            if let Ok(clean) = clean_absolute(&p) {
                assert!(!clean.components().any(|c| c == Component::ParentDir));
            }
        }
    }
    let roots = [PathBuf::from("/srv/root"), PathBuf::from("/tmp/x")];
    if check_path_under(text, &roots).is_ok() {
        // The accepted path, read the way a server would read it.
        let path = if text.starts_with("file:") {
            file_path(&normalize(text).expect("accepted"))
                .expect("file")
                .expect("local")
        } else {
            PathBuf::from(text)
        };
        assert!(path.is_absolute(), "relative path accepted: {text:?}");
        assert!(
            !path.components().any(|c| c == Component::ParentDir),
            "`..` accepted: {text:?}"
        );
        assert!(
            roots.iter().any(|r| path.starts_with(r)),
            "path outside the roots accepted: {text:?}"
        );
        let _ = Path::new(text);
    }
});
