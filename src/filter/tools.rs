//! The server's tools as last listed: each tool's `inputSchema` and `outputSchema`, kept as
//! JSON text when the listing passes and compiled on the first call that needs them (never
//! per call, and never for a tool the host does not call: compiling a schema costs tens of
//! microseconds, a listing may hold thousands of tools). A
//! `notifications/tools/list_changed` makes the listing stale until the host, or the guard
//! itself before the next call (`own_listing.rs`), lists the tools again.

use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

use crate::maps::{Map, Set};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No `tools/list` result seen yet.
    #[default]
    Never,
    Listed,
    /// The server said its tools changed; calls wait for a new listing.
    Stale,
}

#[derive(Debug)]
pub struct Tool {
    input: Schema,
    output: Schema,
}

impl Tool {
    /// The validator of the tool's `inputSchema`: `None` without one, or when it does not
    /// compile (the first time, `broken` receives why).
    pub fn input(&self, broken: &mut Vec<String>) -> Option<&Validator> {
        self.input.validator("inputSchema", broken)
    }

    /// The validator of the tool's `outputSchema`, as [`Tool::input`].
    pub fn output(&self, broken: &mut Vec<String>) -> Option<&Validator> {
        self.output.validator("outputSchema", broken)
    }
}

/// One schema of a listed tool: its JSON text, compiled on first use.
struct Schema {
    text: Option<Box<str>>,
    compiled: OnceLock<Result<Validator, String>>,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema")
            .field("present", &self.text.is_some())
            .field("compiled", &self.compiled.get().map(Result::is_ok))
            .finish()
    }
}

impl Schema {
    fn of(tool: &Value, key: &str) -> Schema {
        Schema {
            // `to_string` on a `Value` goes through `fmt`: `serde_json::to_string` is faster.
            // `null` is no schema (a fault the schema stage reports, or the policy tolerates),
            // not one that fails to compile.
            text: tool
                .get(key)
                .filter(|s| !s.is_null())
                .and_then(|s| serde_json::to_string(s).ok())
                .map(String::into_boxed_str),
            compiled: OnceLock::new(),
        }
    }

    fn validator(&self, key: &str, broken: &mut Vec<String>) -> Option<&Validator> {
        let text = self.text.as_deref()?;
        let mut fresh = false;
        let compiled = self.compiled.get_or_init(|| {
            fresh = true;
            compile_schema(text)
        });
        match compiled {
            Ok(validator) => Some(validator),
            Err(e) => {
                if fresh {
                    broken.push(format!("{key}: {e}"));
                }
                None
            }
        }
    }
}

/// What to record about a tool whose schema does not compile (once per listing).
pub fn broken_finding(tool: &str, why: &str) -> String {
    format!("tool `{tool}` has a schema that does not compile ({why}); its calls are not checked")
}

#[derive(Debug, Default)]
pub struct ToolCache {
    pub state: State,
    tools: Map<String, Tool>,
    /// Tools called without a current listing since the last one (each is reported once).
    unchecked_calls: Set<String>,
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

    /// A `tools/list` page is passing: a first page replaces the listing, a later one adds to
    /// it ([`ToolCache::record`] each of its tools).
    pub fn start_page(&mut self, first_page: bool) {
        if first_page || self.state != State::Listed {
            self.tools.clear();
        }
        self.state = State::Listed;
        self.unchecked_calls.clear();
    }

    /// One tool of the page, as forwarded: its schemas are kept as text, compiled on first use.
    pub fn record(&mut self, tool: &Value) {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            return;
        };
        let input = Schema::of(tool, "inputSchema");
        let output = Schema::of(tool, "outputSchema");
        self.tools.insert(name.to_owned(), Tool { input, output });
    }

    /// Whether this is the first call of `name` without a current listing (to report once).
    pub fn first_unchecked_call(&mut self, name: &str) -> bool {
        !self.unchecked_calls.contains(name) && self.unchecked_calls.insert(name.to_owned())
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

    pub fn get(&self, name: &str) -> Option<&Tool> {
        self.tools.get(name)
    }
}

/// Compile a server-supplied schema (JSON text written from the listing). No remote references
/// are fetched (the crate is built without its HTTP retriever), so a `$ref` to a URL fails to
/// compile instead.
fn compile_schema(text: &str) -> Result<Validator, String> {
    let schema: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    jsonschema::options()
        .should_validate_formats(false)
        .build(&schema)
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
