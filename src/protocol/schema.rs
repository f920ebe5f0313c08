//! The official MCP JSON schemas (vendored under `schemas/`, MIT, Model Context Protocol
//! authors), compiled once per protocol version into validators for each method's `params` and
//! result.
//!
//! Only `params` and `result` are validated (the envelope is checked by [`super::envelope`]), so a
//! message is never rebuilt into a whole JSON tree just to be validated. Compiling a version's
//! whole document takes tens of milliseconds: [`Schemas::warm_in_background`] does it off the
//! relay's thread at start-up, and [`Schemas::get`] waits for (or does) that one compilation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::Validator;
use serde_json::Value;

use super::version::KNOWN_VERSIONS;

/// The vendored schema documents, oldest first (same order as [`KNOWN_VERSIONS`]).
const SOURCES: [(&str, &str); 5] = [
    ("2024-11-05", include_str!("../../schemas/2024-11-05.json")),
    ("2025-03-26", include_str!("../../schemas/2025-03-26.json")),
    ("2025-06-18", include_str!("../../schemas/2025-06-18.json")),
    ("2025-11-25", include_str!("../../schemas/2025-11-25.json")),
    ("2026-07-28", include_str!("../../schemas/2026-07-28.json")),
];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    #[error("the vendored MCP schema {version} is not valid JSON: {source}")]
    Json {
        version: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the vendored MCP schema {version} does not compile: {message}")]
    Compile {
        version: &'static str,
        message: String,
    },
    #[error("the vendored MCP schema {version} has no definitions")]
    NoDefinitions { version: &'static str },
}

/// The outcome of validating one part of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Valid,
    /// The first violation: where in the value, and what.
    Invalid(String),
    /// The schema says nothing about this method (unknown to the version): envelope only.
    Unchecked,
}

/// Where a method's parts live in one version's document.
#[derive(Debug, Clone)]
struct MethodShape {
    /// JSON pointer (`#/$defs/...`) of the `params` schema.
    params: Option<String>,
    params_required: bool,
    /// JSON pointer of the result schema (requests only).
    result: Option<String>,
}

/// One protocol version's compiled schema.
pub struct VersionSchema {
    pub version: &'static str,
    /// The vendored document, with its known faults patched.
    doc: Value,
    methods: HashMap<String, MethodShape>,
    /// Validators by definition pointer, each compiled once, on first use: compiling one
    /// definition takes a fraction of a millisecond, the whole document tens of milliseconds
    /// that every session would otherwise wait for before its first message.
    validators: Mutex<HashMap<String, Option<Arc<Validator>>>>,
}

impl std::fmt::Debug for VersionSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionSchema")
            .field("version", &self.version)
            .field("methods", &self.methods.len())
            .finish()
    }
}

impl VersionSchema {
    /// Parse, patch the known faults of, and compile one vendored document.
    pub fn compile(version: &'static str, text: &str) -> Result<VersionSchema, SchemaError> {
        let mut doc: Value =
            serde_json::from_str(text).map_err(|source| SchemaError::Json { version, source })?;
        tolerate_known_faults(&mut doc);
        let methods = method_shapes(&doc).ok_or(SchemaError::NoDefinitions { version })?;
        Ok(VersionSchema {
            version,
            doc,
            methods,
            validators: Mutex::new(HashMap::new()),
        })
    }

    /// The validator of the definition at `pointer` (`#/$defs/Name/...`), compiled on first use.
    fn validator(&self, pointer: &str) -> Option<Arc<Validator>> {
        let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = cache.get(pointer) {
            return known.clone();
        }
        let built = self.build(pointer).map(Arc::new);
        cache.insert(pointer.to_owned(), built.clone());
        built
    }

    /// Compile one definition: a root that refers to it and carries the document's definitions,
    /// so that every `$ref` inside resolves.
    fn build(&self, pointer: &str) -> Option<Validator> {
        let (key, defs) = definitions(&self.doc)?;
        let mut root = serde_json::Map::new();
        if let Some(draft) = self.doc.get("$schema") {
            root.insert("$schema".into(), draft.clone());
        }
        root.insert("$ref".into(), Value::String(pointer.to_owned()));
        root.insert(key.into(), Value::Object(defs.clone()));
        match jsonschema::options()
            .should_validate_formats(false)
            .build(&Value::Object(root))
        {
            Ok(validator) => Some(validator),
            Err(e) => {
                tracing::error!(
                    version = self.version,
                    pointer,
                    "schema definition does not compile: {e}"
                );
                None
            }
        }
    }

    /// Compile the validators most sessions need, ahead of their first use.
    fn warm(&self) {
        for method in [
            "initialize",
            "tools/list",
            "tools/call",
            "notifications/initialized",
        ] {
            if let Some(shape) = self.methods.get(method) {
                for pointer in shape.params.iter().chain(shape.result.iter()) {
                    let _ = self.validator(pointer);
                }
            }
        }
    }

    /// Whether this version defines `method`.
    pub fn knows(&self, method: &str) -> bool {
        self.methods.contains_key(method)
    }

    /// Validate a request's or notification's `params` (`None`: absent).
    pub fn check_params(&self, method: &str, params: Option<&Value>) -> Check {
        let Some(shape) = self.methods.get(method) else {
            return Check::Unchecked;
        };
        match (params, &shape.params) {
            (None, _) if shape.params_required => Check::Invalid("params: required".into()),
            (None, _) | (_, None) => Check::Valid,
            (Some(params), Some(pointer)) => self.check(pointer, params, "params"),
        }
    }

    /// Validate the result answering a request of `method`.
    pub fn check_result(&self, method: &str, result: &Value) -> Check {
        match self.methods.get(method).and_then(|s| s.result.as_deref()) {
            Some(pointer) => self.check(pointer, result, "result"),
            None => Check::Unchecked,
        }
    }

    fn check(&self, pointer: &str, value: &Value, what: &str) -> Check {
        let Some(validator) = self.validator(pointer) else {
            return Check::Unchecked;
        };
        match validator.validate(value) {
            Ok(()) => Check::Valid,
            Err(e) => Check::Invalid(format!("{what}{}: {e}", e.instance_path())),
        }
    }
}

/// Every version's schema, each compiled at most once.
#[derive(Debug)]
pub struct Schemas {
    slots: Vec<OnceLock<Option<VersionSchema>>>,
}

impl Schemas {
    pub fn new() -> Arc<Schemas> {
        Arc::new(Schemas {
            slots: SOURCES.iter().map(|_| OnceLock::new()).collect(),
        })
    }

    /// Load every version and compile its common validators now, on this thread (tests,
    /// benchmarks).
    pub fn compile_all(&self) {
        for version in KNOWN_VERSIONS {
            if let Some(schema) = self.get(version) {
                schema.warm();
            }
        }
    }

    /// Load `first` (the version most likely in force) and compile its common validators on a
    /// background thread, so the first messages rarely wait; the rest compile on first use.
    pub fn warm_in_background(self: &Arc<Self>, first: Option<&str>) {
        let schemas = Arc::clone(self);
        let first = first.map(str::to_owned);
        let spawned = std::thread::Builder::new()
            .name("mcp-guard-schemas".into())
            .spawn(move || {
                if let Some(schema) = first.and_then(|v| schemas.get(&v)) {
                    schema.warm();
                }
            });
        if let Err(e) = spawned {
            tracing::debug!("schemas compile on first use (no thread: {e})");
        }
    }

    /// The compiled schema of `version`; `None` for a version the guard does not know (or, which
    /// a unit test rules out, one whose vendored document does not compile).
    pub fn get(&self, version: &str) -> Option<&VersionSchema> {
        let index = SOURCES.iter().position(|(v, _)| *v == version)?;
        let (name, text) = SOURCES[index];
        self.slots[index]
            .get_or_init(|| match VersionSchema::compile(name, text) {
                Ok(schema) => Some(schema),
                Err(e) => {
                    tracing::error!("{e}; messages of this version get the envelope check only");
                    None
                }
            })
            .as_ref()
    }
}

/// The definitions member and its name (`definitions` in draft-07, `$defs` in 2020-12).
fn definitions(doc: &Value) -> Option<(&'static str, &serde_json::Map<String, Value>)> {
    if let Some(defs) = doc.get("$defs").and_then(Value::as_object) {
        return Some(("$defs", defs));
    }
    doc.get("definitions")
        .and_then(Value::as_object)
        .map(|d| ("definitions", d))
}

/// Map each method to the pointers of its params and result schemas, from the definitions
/// whose `method` is a constant (`CallToolRequest` → `tools/call`).
fn method_shapes(doc: &Value) -> Option<HashMap<String, MethodShape>> {
    let (key, defs) = definitions(doc)?;
    let pointer = |name: &str| format!("#/{key}/{name}");
    let mut methods = HashMap::new();
    for (name, def) in defs {
        let Some(method) = def
            .pointer("/properties/method/const")
            .and_then(Value::as_str)
        else {
            continue;
        };
        let is_request = name.ends_with("Request");
        if !is_request && !name.ends_with("Notification") {
            continue;
        }
        let params = def.pointer("/properties/params").map(|p| {
            // A `$ref` is compiled under its target's pointer.
            match p.get("$ref").and_then(Value::as_str) {
                Some(target) if p.as_object().is_some_and(|o| o.len() == 1) => target.to_owned(),
                _ => format!("{}/properties/params", pointer(name)),
            }
        });
        let params_required = def
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|v| v == "params"));
        let result = is_request.then(|| {
            let base = name.trim_end_matches("Request");
            // 2026-07-28 names the result union (result or InputRequiredResult) in `…ResultResponse`.
            if defs.contains_key(&format!("{base}ResultResponse")) {
                format!(
                    "{}/properties/result",
                    pointer(&format!("{base}ResultResponse"))
                )
            } else if defs.contains_key(&format!("{base}Result")) {
                pointer(&format!("{base}Result"))
            } else if defs.contains_key("EmptyResult") {
                pointer("EmptyResult")
            } else {
                pointer("Result")
            }
        });
        methods.insert(
            method.to_owned(),
            MethodShape {
                params,
                params_required,
                result,
            },
        );
    }
    Some(methods)
}

/// Patch the faults of the official schemas that real, correct traffic trips over (see
/// `schemas/ATTRIBUTION.md`): `ElicitResult.content` values may be numbers, since a server may
/// ask for a `"type": "number"` field.
fn tolerate_known_faults(doc: &mut Value) {
    let key = if doc.get("$defs").is_some() {
        "$defs"
    } else {
        "definitions"
    };
    let path = format!("/{key}/ElicitResult/properties/content/additionalProperties");
    let Some(values) = doc.pointer_mut(&path) else {
        return;
    };
    let add_number = |schema: &mut Value| {
        if let Some(Value::Array(types)) = schema.get_mut("type") {
            if types.iter().any(|t| t == "integer") && !types.iter().any(|t| t == "number") {
                types.push(Value::from("number"));
            }
        }
    };
    add_number(values);
    if let Some(Value::Array(options)) = values.get_mut("anyOf") {
        options.iter_mut().for_each(add_number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_every_version_compiles_and_knows_tools_call() {
        let schemas = Schemas::new();
        for version in KNOWN_VERSIONS {
            let schema = schemas.get(version).expect(version);
            assert!(schema.knows("tools/call"), "{version}");
            // Every definition the relay may use compiles (they compile lazily in a session).
            for (method, shape) in &schema.methods {
                for pointer in shape.params.iter().chain(shape.result.iter()) {
                    assert!(
                        schema.validator(pointer).is_some(),
                        "{version} {method} {pointer}"
                    );
                }
            }
        }
    }

    #[test]
    fn schema_checks_params_and_results() {
        let schemas = Schemas::new();
        let s = schemas.get("2025-06-18").unwrap();
        assert_eq!(
            s.check_params(
                "tools/call",
                Some(&json!({"name": "echo", "arguments": {}}))
            ),
            Check::Valid
        );
        assert!(matches!(
            s.check_params("tools/call", Some(&json!({"arguments": {}}))),
            Check::Invalid(_)
        ));
        assert_eq!(s.check_params("no/such", None), Check::Unchecked);
        assert!(matches!(
            s.check_result("tools/call", &json!({"content": [{"text": "no type"}]})),
            Check::Invalid(_)
        ));
        assert_eq!(
            s.check_result(
                "tools/call",
                &json!({"content": [{"type": "text", "text": "ok"}]})
            ),
            Check::Valid
        );
    }

    #[test]
    fn schema_tolerates_number_in_elicit_result() {
        let schemas = Schemas::new();
        for version in ["2025-06-18", "2025-11-25", "2026-07-28"] {
            let s = schemas.get(version).unwrap();
            let mut result = json!({"action": "accept", "content": {"age": 4.5}});
            if version == "2026-07-28" {
                result["resultType"] = json!("complete");
            }
            assert_eq!(
                s.check_result("elicitation/create", &result),
                Check::Valid,
                "{version}"
            );
        }
    }

    #[test]
    fn schema_2026_accepts_input_required_results() {
        let schemas = Schemas::new();
        let s = schemas.get("2026-07-28").unwrap();
        let r = json!({"resultType": "input_required", "requestState": "abc"});
        assert_eq!(s.check_result("tools/call", &r), Check::Valid);
    }
}
