//! The policy's firewall sections compiled once at start-up: globs, regexes, roots, buckets.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use super::consent::ConfirmRules;
use super::names::{self, NameFilter};
use super::rate::{Family, RateLimits};
use super::redact::{self, KnownSecrets, Redactor};
use crate::policy::firewall::{ArgumentRule, Items, Permission, ResultsMode};
use crate::policy::vars::PathPattern;
use crate::policy::{EffectivePolicy, Vars};
use crate::protocol::schema::Faults;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FirewallError {
    #[error("[{section}] {source}")]
    Pattern {
        section: &'static str,
        #[source]
        source: names::PatternError,
    },
    #[error("[redaction] {0}")]
    Redaction(#[from] redact::PatternError),
    #[error("[{section}.arguments.{item}] {arg}: bad pattern: {source}")]
    ArgumentPattern {
        section: &'static str,
        item: String,
        arg: String,
        #[source]
        source: regex::Error,
    },
    #[error("{0}: consent (`confirm`, `confirm_timeout`) applies to tools only; move it to [tools] or remove it")]
    PromptSettings(String),
    #[error("path `{pattern}` uses ${{{variable}}}, which is not set")]
    PathVariable { pattern: String, variable: String },
}

/// Caps and switches of the firewall. `strict`, `require_listing` and `tolerate` are the
/// policy's `[validation]` fields: [`compile`] takes them from the policy, and the values here
/// only apply where no layer sets them (a policy merged without the built-in layer).
#[derive(Debug, Clone)]
pub struct Options {
    /// Refuse server→host messages that fail schema validation (default: forward and log).
    pub strict: bool,
    /// Check every `tools/call` against the server's current listing: when the host has not
    /// listed the tools in this session (a 2026-07-28 host may reuse a cached listing), the
    /// guard lists them itself first; a tool the server did not list is refused. `false`: such
    /// calls are forwarded unchecked and recorded.
    pub require_listing: bool,
    /// Schema faults of server→host messages that are neither refused nor recorded.
    pub tolerate: Faults,
    /// Longest text content item, in bytes.
    pub max_text_bytes: usize,
    /// Largest image/audio/blob content item, in bytes of base64.
    pub max_blob_bytes: usize,
    /// Compile the schemas on a background thread (the relay) or now (tests, benchmarks).
    pub compile_schemas_in_background: bool,
    /// Values given to the server (`--env`), redacted like secrets when redaction is on.
    pub secrets: KnownSecrets,
    /// How the user is told which server a call is for (when asked to approve it).
    pub server_label: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            strict: false,
            require_listing: true,
            tolerate: Faults::default(),
            max_text_bytes: 8 << 20,
            max_blob_bytes: 12 << 20,
            compile_schemas_in_background: true,
            secrets: KnownSecrets::default(),
            server_label: "the MCP server".to_owned(),
        }
    }
}

/// A rule on one named argument.
#[derive(Debug)]
pub struct ArgRule {
    pub under: Vec<PathBuf>,
    pub pattern: Option<Regex>,
    pub max_length: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Rules {
    pub options: Options,
    pub tools: NameFilter,
    pub prompts: NameFilter,
    pub resources: NameFilter,
    /// `file://` URIs must lie under one of these; empty: no restriction.
    pub file_roots: Vec<PathBuf>,
    /// Item → argument → rule.
    pub tool_args: HashMap<String, HashMap<String, ArgRule>>,
    pub prompt_args: HashMap<String, HashMap<String, ArgRule>>,
    pub sampling: Option<Permission>,
    pub elicitation: Option<Permission>,
    pub roots: Option<Permission>,
    pub redactor: Option<Redactor>,
    pub sanitize_errors: bool,
    /// `[sanitize] results`: hiding characters in result text.
    pub sanitize_results: ResultsMode,
    /// `[tools.NAME] confirm`: calls that wait for the user's approval.
    pub confirm: ConfirmRules,
}

pub fn compile(
    eff: &EffectivePolicy,
    mut options: Options,
    vars: &Vars,
) -> Result<(Rules, RateLimits), FirewallError> {
    let p = &eff.policy;
    let validation = &p.validation;
    if let Some(strict) = &validation.strict {
        options.strict = strict.value;
    }
    if let Some(require) = &validation.require_listing {
        options.require_listing = require.value;
    }
    for fault in &validation.tolerate {
        options.tolerate.insert(fault.value);
    }
    let strings = |v: &[crate::policy::values::Val<crate::policy::values::NameGlob>]| {
        v.iter().map(|g| g.value.0.clone()).collect::<Vec<_>>()
    };
    let uris = |v: &[crate::policy::values::Val<crate::policy::values::UriPattern>]| {
        v.iter().map(|g| g.value.0.clone()).collect::<Vec<_>>()
    };
    let pattern = |section| move |source| FirewallError::Pattern { section, source };
    let tools = NameFilter::names(&strings(&p.tools.allow), &strings(&p.tools.deny))
        .map_err(pattern("tools"))?;
    let prompts = NameFilter::names(&strings(&p.prompts.allow), &strings(&p.prompts.deny))
        .map_err(pattern("prompts"))?;
    let resources = NameFilter::uris(&uris(&p.resources.allow), &uris(&p.resources.deny))
        .map_err(pattern("resources"))?;
    let mut file_roots = Vec::new();
    for root in &p.resources.file_roots {
        file_roots.extend(expand(&root.value, vars)?);
    }
    let redaction = &p.redaction;
    let redactor = if redaction.enabled.as_ref().is_none_or(|v| v.value) {
        let patterns: Vec<(String, String)> = redaction
            .patterns
            .iter()
            .map(|(k, v)| (k.clone(), v.value.0.clone()))
            .collect();
        let allow: Vec<String> = redaction.allow.iter().map(|a| a.value.0.clone()).collect();
        let builtin = redaction.builtin.as_ref().is_none_or(|v| v.value);
        let redactor = Redactor::new(builtin, &patterns, &allow)?.with_known(&options.secrets);
        Some(redactor).filter(|r| !r.is_empty())
    } else {
        None
    };
    let mut rates = RateLimits::default();
    for (family, items) in [(Family::Tools, &p.tools), (Family::Prompts, &p.prompts)] {
        if let Some(rate) = &items.rate_limit {
            rates.set_method(family, rate.value);
        }
        for (name, rate) in &items.rate_limits {
            rates.set_item(family, name, rate.value);
        }
    }
    if let Some(rate) = &p.resources.rate_limit {
        rates.set_method(Family::Resources, rate.value);
    }
    if let Some(prompt) = p.prompts.each.keys().next() {
        return Err(FirewallError::PromptSettings(format!("[prompts.{prompt}]")));
    }
    if p.prompts.confirm_timeout.is_some() {
        return Err(FirewallError::PromptSettings(
            "[prompts] confirm_timeout".into(),
        ));
    }
    // "unlimited": a year, so the deadline stays representable.
    let confirm_timeout = (p.tools.confirm_timeout.as_ref()).map(|t| {
        t.value
            .duration
            .unwrap_or(Duration::from_secs(365 * 24 * 3600))
    });
    let confirm =
        ConfirmRules::compile(&p.tools.each, confirm_timeout).map_err(pattern("tools"))?;
    let sr = &p.server_requests;
    let rules = Rules {
        options,
        tools,
        prompts,
        resources,
        file_roots,
        tool_args: argument_rules(&p.tools, "tools", vars)?,
        prompt_args: argument_rules(&p.prompts, "prompts", vars)?,
        sampling: sr.sampling.as_ref().map(|v| v.value),
        elicitation: sr.elicitation.as_ref().map(|v| v.value),
        roots: sr.roots.as_ref().map(|v| v.value),
        redactor,
        sanitize_errors: p.errors.sanitize.as_ref().is_some_and(|v| v.value),
        // Secure by default even in a policy merged without the built-in layer.
        sanitize_results: p
            .sanitize
            .results
            .as_ref()
            .map_or(ResultsMode::Strip, |v| v.value),
        confirm,
    };
    Ok((rules, rates))
}

fn expand(pattern: &PathPattern, vars: &Vars) -> Result<Vec<PathBuf>, FirewallError> {
    pattern
        .expand(vars)
        .map_err(|variable| FirewallError::PathVariable {
            pattern: pattern.as_str().to_owned(),
            variable,
        })
}

fn argument_rules(
    items: &Items,
    section: &'static str,
    vars: &Vars,
) -> Result<HashMap<String, HashMap<String, ArgRule>>, FirewallError> {
    let mut out = HashMap::new();
    for (item, args) in &items.arguments {
        let mut rules = HashMap::new();
        for (arg, rule) in args {
            let ArgumentRule {
                under,
                pattern,
                max_length,
            } = &rule.value;
            let mut roots = Vec::new();
            for p in under {
                roots.extend(expand(p, vars)?);
            }
            let pattern = pattern
                .as_ref()
                .map(|re| Regex::new(&format!("^(?:{})$", re.0)))
                .transpose()
                .map_err(|source| FirewallError::ArgumentPattern {
                    section,
                    item: item.clone(),
                    arg: arg.clone(),
                    source,
                })?;
            rules.insert(
                arg.clone(),
                ArgRule {
                    under: roots,
                    pattern,
                    max_length: *max_length,
                },
            );
        }
        out.insert(item.clone(), rules);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{merge, parse_policy, Origin};
    use crate::protocol::schema::Fault;

    fn compiled(layers: &[&str], options: Options) -> Options {
        let layers = layers
            .iter()
            .map(|t| (Origin::File("p.toml".into()), parse_policy("p", t).unwrap()))
            .collect();
        compile(&merge(layers), options, &Vars::default())
            .unwrap()
            .0
            .options
    }

    #[test]
    fn config_validation_fields_reach_the_options() {
        let o = compiled(
            &[
                "version = 1\n[validation]\nstrict = true\nrequire_listing = true\n\
               tolerate = [\"content-without-type\"]",
            ],
            Options::default(),
        );
        assert!(o.strict && o.require_listing);
        assert!(
            o.tolerate.contains(Fault::ContentWithoutType)
                && !o.tolerate.contains(Fault::NullOptionalFields)
        );
        // A later layer turns `strict` off; tolerances add up.
        let o = compiled(
            &[
                "version = 1\n[validation]\nstrict = true\ntolerate = [\"null-optional-fields\"]",
                "version = 1\n[validation]\nstrict = false\ntolerate = [\"content-without-type\"]",
            ],
            Options::default(),
        );
        assert!(!o.strict);
        assert!(
            o.tolerate.contains(Fault::NullOptionalFields)
                && o.tolerate.contains(Fault::ContentWithoutType)
                && !o.tolerate.contains(Fault::ToolWithoutInputSchema)
        );
        // Where no layer sets them, the caller's options stand.
        let o = compiled(
            &["version = 1"],
            Options {
                strict: true,
                ..Options::default()
            },
        );
        assert!(o.strict && o.require_listing && o.tolerate.is_empty());
    }
}
