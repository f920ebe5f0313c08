//! Path patterns with `${VARIABLES}` and globs: checked when the policy is loaded, expanded
//! against the user's environment when it is resolved.
//!
//! Variables name the *user's* directories (the guard's environment), not the private HOME and
//! TMPDIR the sandbox gives the server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::error::closest;

/// Every variable a path may use.
pub const VARIABLES: &[&str] = &[
    "HOME",
    "CWD",
    "TMPDIR",
    "SERVER_DIR",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
];

/// The most entries a glob may expand to, and how deep `**` walks: a policy glob is meant to
/// pick a few install directories, not to index a disk.
const GLOB_MAX_MATCHES: usize = 1000;
const GLOB_MAX_DEPTH: usize = 8;

/// An absolute path that may use `${VAR}`s and glob characters (`*`, `?`, `[..]`, `{a,b}`, `**`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PathPattern(String);

impl PathPattern {
    /// Check `text` as a policy file path: absolute, known variables, valid glob.
    /// A leading `~` or `~/` is the user's home, as `${HOME}`.
    pub fn parse(text: &str) -> Result<PathPattern, String> {
        let home_based = home_to_variable(text)?;
        let text = home_based.as_deref().unwrap_or(text);
        let (skeleton, _) = substitute(text, |_| Some("/v".into()))?;
        if !text.starts_with('/') && !text.starts_with("${") {
            return Err(format!(
                "`{text}` is relative; policy paths must be absolute: write \"${{CWD}}/{}\" or an absolute path",
                text.trim_start_matches("./")
            ));
        }
        if skeleton.split('/').any(|c| c == "..") {
            return Err(format!(
                "`{text}` contains `..`; write the path it leads to"
            ));
        }
        if has_glob(&skeleton) {
            globset::Glob::new(&skeleton)
                .map_err(|e| format!("bad glob `{text}`: {}", e.kind()))?;
        }
        Ok(PathPattern(text.to_owned()))
    }

    /// A path from a CLI flag: relative paths are taken against the CWD.
    /// A leading `~` or `~/` is the user's home, as a shell would have it (host configs pass
    /// arguments to no shell).
    pub fn from_flag(text: &str, cwd: &Path) -> Result<PathPattern, String> {
        if text.starts_with('/') || text.starts_with("${") || text.starts_with('~') {
            return PathPattern::parse(text);
        }
        let joined = cwd.join(text);
        let joined = joined
            .to_str()
            .ok_or_else(|| format!("`{text}`: the path is not valid UTF-8"))?;
        PathPattern::parse(joined)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn uses_variable(&self, name: &str) -> bool {
        self.0.contains(&format!("${{{name}}}"))
    }

    /// Substitute the variables. `Err` names a variable that has no value here.
    pub fn expand_text(&self, vars: &Vars) -> Result<String, String> {
        let (text, missing) = substitute(&self.0, |name| {
            vars.get(name).map(|p| p.to_string_lossy().into_owned())
        })?;
        match missing {
            Some(name) => Err(name),
            None => Ok(normalize(&text)),
        }
    }

    /// The paths this pattern stands for: the path itself, or the existing paths a glob matches.
    pub fn expand(&self, vars: &Vars) -> Result<Vec<PathBuf>, String> {
        let text = self.expand_text(vars)?;
        if !has_glob(&text) {
            return Ok(vec![PathBuf::from(text)]);
        }
        Ok(glob_existing(&text))
    }
}

/// `~` and `~/…` as `${HOME}` and `${HOME}/…`; `None` for a path without a leading `~`.
/// `~name` (another user's home) is refused: the guard confines one user's server.
fn home_to_variable(text: &str) -> Result<Option<String>, String> {
    let Some(rest) = text.strip_prefix('~') else {
        return Ok(None);
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Ok(Some(format!("${{HOME}}{rest}")));
    }
    Err(format!(
        "`{text}`: only `~` and `~/` (your own home) are expanded; write the absolute path"
    ))
}

/// Free text that may use `${VAR}`s (an `[env] set` value): variables are checked on load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    /// From a CLI flag: taken as written, `$` has no meaning.
    literal: bool,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        substitute(text, |_| Some(String::new()))?;
        Ok(Template {
            text: text.to_owned(),
            literal: false,
        })
    }

    pub fn literal(text: &str) -> Template {
        Template {
            text: text.to_owned(),
            literal: true,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn expand(&self, vars: &Vars) -> Result<String, String> {
        if self.literal {
            return Ok(self.text.clone());
        }
        let (text, missing) = substitute(&self.text, |name| {
            vars.get(name).map(|p| p.to_string_lossy().into_owned())
        })?;
        missing.map_or(Ok(text), Err)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Template::parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for PathPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PathPattern::parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// Values of the variables for one resolution.
#[derive(Debug, Clone, Default)]
pub struct Vars(BTreeMap<&'static str, PathBuf>);

impl Vars {
    /// The user's directories from the environment; XDG ones default per the XDG spec.
    /// `server_dir` is known only once the server command is.
    pub fn from_env(server_dir: Option<PathBuf>) -> Vars {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let mut vars = BTreeMap::new();
        let home = env("HOME");
        if let Some(home) = &home {
            vars.insert("HOME", home.clone());
        }
        if let Ok(cwd) = std::env::current_dir() {
            vars.insert("CWD", cwd);
        }
        vars.insert(
            "TMPDIR",
            env("TMPDIR").unwrap_or_else(|| PathBuf::from("/tmp")),
        );
        for (name, default) in [
            ("XDG_CACHE_HOME", ".cache"),
            ("XDG_CONFIG_HOME", ".config"),
            ("XDG_DATA_HOME", ".local/share"),
            ("XDG_STATE_HOME", ".local/state"),
        ] {
            if let Some(p) = env(name).or_else(|| home.as_ref().map(|h| h.join(default))) {
                vars.insert(name, p);
            }
        }
        if let Some(dir) = server_dir {
            vars.insert("SERVER_DIR", dir);
        }
        Vars(vars)
    }

    /// Fixed values, for tests.
    pub fn from_pairs(pairs: &[(&'static str, &str)]) -> Vars {
        Vars(pairs.iter().map(|(k, v)| (*k, PathBuf::from(v))).collect())
    }

    /// These values plus `${SERVER_DIR}`, unless it is set already.
    pub fn with_server_dir(&self, dir: Option<PathBuf>) -> Vars {
        let mut vars = self.clone();
        if let Some(dir) = dir {
            vars.0.entry("SERVER_DIR").or_insert(dir);
        }
        vars
    }

    pub fn get(&self, name: &str) -> Option<&Path> {
        self.0.get(name).map(PathBuf::as_path)
    }
}

/// Replace each `${NAME}` with `value(NAME)`. Unknown names and malformed references are errors;
/// a known name without a value is returned as the second element (first one only).
fn substitute(
    text: &str,
    value: impl Fn(&str) -> Option<String>,
) -> Result<(String, Option<String>), String> {
    let mut out = String::with_capacity(text.len());
    let mut missing = None;
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let Some(body) = after.strip_prefix('{') else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            return Err(format!(
                "`${name}` in `{text}`: write variables with braces, `${{{name}}}`"
            ));
        };
        let end = body
            .find('}')
            .ok_or_else(|| format!("`${{` without a closing `}}` in `{text}`"))?;
        let name = &body[..end];
        if !VARIABLES.contains(&name) {
            let hint = match closest(name, VARIABLES.iter().copied()) {
                Some(c) => format!("did you mean `${{{c}}}`?"),
                None => format!(
                    "known variables: {}",
                    VARIABLES
                        .iter()
                        .map(|v| format!("${{{v}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(format!(
                "unknown variable `${{{name}}}` in `{text}`; {hint}"
            ));
        }
        match value(name) {
            Some(v) => out.push_str(&v),
            None => {
                missing.get_or_insert_with(|| name.to_owned());
            }
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok((out, missing))
}

fn has_glob(text: &str) -> bool {
    text.contains(['*', '?', '[', '{'])
}

/// Collapse `//` and drop a trailing `/` (but keep `/`).
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for part in text.split('/').filter(|p| !p.is_empty() && *p != ".") {
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Existing paths that match an absolute glob, walking only below its literal prefix.
fn glob_existing(pattern: &str) -> Vec<PathBuf> {
    let Ok(glob) = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
    else {
        return Vec::new();
    };
    let matcher = glob.compile_matcher();
    let parts: Vec<&str> = pattern.split('/').collect();
    let first_glob = parts
        .iter()
        .position(|p| has_glob(p))
        .unwrap_or(parts.len());
    let base = PathBuf::from(if first_glob <= 1 {
        "/".to_owned()
    } else {
        parts[..first_glob].join("/")
    });
    let depth = if pattern.contains("**") {
        GLOB_MAX_DEPTH
    } else {
        parts.len() - first_glob
    };
    let mut found = Vec::new();
    walk(&base, depth, &mut |p| {
        if matcher.is_match(p) {
            found.push(p.to_path_buf());
        }
        found.len() < GLOB_MAX_MATCHES
    });
    found.sort();
    found
}

/// Visit entries under `dir` up to `depth` levels; `visit` returns false to stop. Symlinked
/// directories are not followed, so a link loop cannot trap the walk.
fn walk(dir: &Path, depth: usize, visit: &mut dyn FnMut(&Path) -> bool) -> bool {
    if depth == 0 {
        return true;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return true;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if !visit(&path) {
            return false;
        }
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && !walk(&path, depth - 1, visit) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars::from_pairs(&[
            ("HOME", "/home/u"),
            ("CWD", "/work/p"),
            ("XDG_CACHE_HOME", "/home/u/.cache"),
        ])
    }

    #[test]
    fn path_pattern_expands_variables() {
        let p = PathPattern::parse("${HOME}/.npm/").unwrap();
        assert_eq!(
            p.expand(&vars()).unwrap(),
            vec![PathBuf::from("/home/u/.npm")]
        );
        let p = PathPattern::parse("${XDG_CACHE_HOME}//uv").unwrap();
        assert_eq!(p.expand_text(&vars()).unwrap(), "/home/u/.cache/uv");
    }

    #[test]
    fn path_pattern_reports_missing_value() {
        let p = PathPattern::parse("${SERVER_DIR}/data").unwrap();
        assert_eq!(p.expand(&vars()).unwrap_err(), "SERVER_DIR");
    }

    #[test]
    fn path_pattern_refuses_unknown_variable_with_suggestion() {
        let e = PathPattern::parse("${HOEM}/x").unwrap_err();
        assert!(
            e.contains("unknown variable `${HOEM}`") && e.contains("did you mean `${HOME}`?"),
            "{e}"
        );
    }

    #[test]
    fn path_pattern_refuses_relative_and_dotdot() {
        let e = PathPattern::parse("data/x").unwrap_err();
        assert!(e.contains("\"${CWD}/data/x\""), "{e}");
        assert!(PathPattern::parse("~x/y").unwrap_err().contains("absolute"));
        assert!(PathPattern::parse("/a/../b").unwrap_err().contains("`..`"));
    }

    #[test]
    fn path_pattern_refuses_bad_glob_and_unbraced_variable() {
        assert!(PathPattern::parse("/a/[b")
            .unwrap_err()
            .contains("bad glob"));
        assert!(PathPattern::parse("$HOME/x")
            .unwrap_err()
            .contains("`${HOME}`"));
        assert!(PathPattern::parse("${HOME/x")
            .unwrap_err()
            .contains("closing"));
    }

    #[test]
    fn path_pattern_glob_matches_existing_entries() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["v18/bin", "v20/bin", "other"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let root = dir.path().to_str().unwrap();
        let p = PathPattern::parse(&format!("{root}/v*/bin")).unwrap();
        let got = p.expand(&Vars::default()).unwrap();
        assert_eq!(
            got,
            vec![dir.path().join("v18/bin"), dir.path().join("v20/bin")]
        );
        let p = PathPattern::parse(&format!("{root}/**/bin")).unwrap();
        assert_eq!(p.expand(&Vars::default()).unwrap().len(), 2);
    }

    #[test]
    fn leading_tilde_is_home_in_flags_and_policies() {
        let cwd = Path::new("/work/p");
        for (text, expected) in [("~", "${HOME}"), ("~/notes", "${HOME}/notes")] {
            assert_eq!(
                PathPattern::from_flag(text, cwd).unwrap().as_str(),
                expected
            );
            assert_eq!(PathPattern::parse(text).unwrap().as_str(), expected);
        }
        let vars = Vars::from_pairs(&[("HOME", "/home/u")]);
        let notes = PathPattern::from_flag("~/notes", cwd).unwrap();
        assert_eq!(notes.expand_text(&vars).unwrap(), "/home/u/notes");
        assert_eq!(
            PathPattern::from_flag("./~", cwd).unwrap().as_str(),
            "/work/p/./~"
        );
    }

    #[test]
    fn path_pattern_from_flag_accepts_relative() {
        let p = PathPattern::from_flag("data", Path::new("/work/p")).unwrap();
        assert_eq!(p.as_str(), "/work/p/data");
    }
}
