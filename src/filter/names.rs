//! Allow/deny by name glob (tools, prompts) and by URI pattern (resources, templates). No allow
//! pattern means everything is allowed; deny always wins.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

#[derive(Debug, thiserror::Error)]
#[error("bad pattern `{pattern}`: {source}")]
pub struct PatternError {
    pattern: String,
    #[source]
    source: globset::Error,
}

impl PatternError {
    pub fn new(pattern: &str, source: globset::Error) -> Self {
        PatternError {
            pattern: pattern.to_owned(),
            source,
        }
    }
}

/// Why an item is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Denied,
    NotAllowed,
}

#[derive(Debug, Default)]
pub struct NameFilter {
    allow: Option<GlobSet>,
    deny: Option<GlobSet>,
}

impl NameFilter {
    /// Name globs: `*` matches any characters.
    pub fn names(allow: &[String], deny: &[String]) -> Result<NameFilter, PatternError> {
        Self::build(allow, deny, Glob::new)
    }

    /// URI globs over the normalised URI: `*` stays within one path segment, `**` crosses
    /// them, and a lone `*` matches every URI.
    pub fn uris(allow: &[String], deny: &[String]) -> Result<NameFilter, PatternError> {
        Self::build(allow, deny, |p| {
            let p = if p == "*" { "**" } else { p };
            GlobBuilder::new(p).literal_separator(true).build()
        })
    }

    fn build(
        allow: &[String],
        deny: &[String],
        glob: impl Fn(&str) -> Result<Glob, globset::Error>,
    ) -> Result<NameFilter, PatternError> {
        let set = |patterns: &[String]| -> Result<Option<GlobSet>, PatternError> {
            if patterns.is_empty() {
                return Ok(None);
            }
            let mut b = GlobSetBuilder::new();
            for p in patterns {
                b.add(glob(p).map_err(|source| PatternError {
                    pattern: p.clone(),
                    source,
                })?);
            }
            b.build().map(Some).map_err(|source| PatternError {
                pattern: patterns.join(", "),
                source,
            })
        };
        Ok(NameFilter {
            allow: set(allow)?,
            deny: set(deny)?,
        })
    }

    pub fn is_open(&self) -> bool {
        self.allow.is_none() && self.deny.is_none()
    }

    pub fn check(&self, name: &str) -> Result<(), Refusal> {
        if self.deny.as_ref().is_some_and(|d| d.is_match(name)) {
            return Err(Refusal::Denied);
        }
        if self.allow.as_ref().is_some_and(|a| !a.is_match(name)) {
            return Err(Refusal::NotAllowed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn names_deny_wins_over_allow() {
        let f =
            NameFilter::names(&v(&["read_*", "list_directory"]), &v(&["read_secret*"])).unwrap();
        assert_eq!(f.check("read_file"), Ok(()));
        assert_eq!(f.check("read_secrets"), Err(Refusal::Denied));
        assert_eq!(f.check("write_file"), Err(Refusal::NotAllowed));
        assert!(NameFilter::names(&[], &[]).unwrap().is_open());
    }

    #[test]
    fn names_uri_globs_respect_segments() {
        let f = NameFilter::uris(
            &v(&["file:///srv/*/notes/**", "memory://*"]),
            &v(&["file:///**/.env"]),
        )
        .unwrap();
        assert_eq!(f.check("file:///srv/a/notes/x/y.md"), Ok(()));
        assert_eq!(f.check("file:///srv/a/b/notes/x"), Err(Refusal::NotAllowed));
        assert_eq!(f.check("file:///srv/a/notes/.env"), Err(Refusal::Denied));
        assert_eq!(f.check("memory://k"), Ok(()));
        let all = NameFilter::uris(&v(&["*"]), &[]).unwrap();
        assert_eq!(all.check("test://static/resource/1"), Ok(()));
    }
}
