//! The server's tools as last listed: each tool's `inputSchema` and `outputSchema`, compiled
//! when the listing passes (never per call). A `notifications/tools/list_changed` makes the
//! listing stale until the host lists the tools again.

use std::collections::{HashMap, HashSet};

use jsonschema::Validator;
use serde_json::Value;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No `tools/list` result seen yet.
    #[default]
    Never,
    Listed,
    /// The server said its tools changed; calls wait for a new listing.
    Stale,
}

pub struct Tool {
    pub input: Option<Validator>,
    pub output: Option<Validator>,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool")
            .field("input", &self.input.is_some())
            .field("output", &self.output.is_some())
            .finish()
    }
}

#[derive(Debug, Default)]
pub struct ToolCache {
    pub state: State,
    tools: HashMap<String, Tool>,
    /// Tools called without a current listing since the last one (each is reported once).
    unchecked_calls: HashSet<String>,
}

/// What the cache says about a call to a tool.
pub enum Lookup<'a> {
    Found(&'a Tool),
    NeverListed,
    Stale,
    Unknown,
}

impl ToolCache {
    pub fn invalidate(&mut self) {
        if self.state == State::Listed {
            self.state = State::Stale;
        }
    }

    /// A `tools/list` page passed: a first page replaces the listing, a later one adds to it.
    /// Returns the tools whose schemas could not be compiled (they are called unchecked).
    pub fn record_page(&mut self, first_page: bool, tools: &[Value]) -> Vec<(String, String)> {
        if first_page || self.state != State::Listed {
            self.tools.clear();
        }
        self.state = State::Listed;
        self.unchecked_calls.clear();
        let mut broken = Vec::new();
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            let mut compile = |key: &str| {
                // `null` is no schema (a fault the schema stage reports, or the policy
                // tolerates), not one that fails to compile.
                let schema = tool.get(key).filter(|s| !s.is_null())?;
                match compile_schema(schema) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        broken.push((name.to_owned(), format!("{key}: {e}")));
                        None
                    }
                }
            };
            let input = compile("inputSchema");
            let output = compile("outputSchema");
            self.tools.insert(name.to_owned(), Tool { input, output });
        }
        broken
    }

    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        match (self.state, self.tools.get(name)) {
            (State::Never, _) => Lookup::NeverListed,
            (State::Stale, Some(_)) => Lookup::Stale,
            (State::Stale, None) => Lookup::Unknown,
            (State::Listed, Some(tool)) => Lookup::Found(tool),
            (State::Listed, None) => Lookup::Unknown,
        }
    }

    /// Whether this is the first call of `name` without a current listing (to report once).
    pub fn first_unchecked_call(&mut self, name: &str) -> bool {
        !self.unchecked_calls.contains(name) && self.unchecked_calls.insert(name.to_owned())
    }

    pub fn get(&self, name: &str) -> Option<&Tool> {
        self.tools.get(name)
    }
}

/// Compile a server-supplied schema. No remote references are fetched (the crate is built
/// without its HTTP retriever), so a `$ref` to a URL fails to compile instead.
fn compile_schema(schema: &Value) -> Result<Validator, String> {
    jsonschema::options()
        .should_validate_formats(false)
        .build(schema)
        .map_err(|e| e.to_string())
}

/// The first violation of `value` against `validator`, if any.
pub fn violation(validator: &Validator, value: &Value) -> Option<String> {
    validator.validate(value).err().map(|e| {
        let at = e.instance_path().to_string();
        if at.is_empty() {
            e.to_string()
        } else {
            format!("{at}: {e}")
        }
    })
}
