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
use crate::maps::Map;

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

/// A fault of real but sloppy servers that the official schemas reject and a policy may
/// tolerate (`[validation] tolerate`). A tolerated fault is repaired in a copy of a message that
/// failed validation, and the copy is validated again: every other fault still counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `null` for a field the schema makes optional (`"nextCursor": null`, `"isError": null`):
    /// repaired by leaving the field out. A required field that is `null` stays a fault.
    NullOptionalFields,
    /// A content item without `type`: repaired by the type its members make unambiguous
    /// (`text` → text, `data` with an image/audio `mimeType`, `resource`, or `uri` → resource
    /// link).
    ContentWithoutType,
    /// A listed tool without `inputSchema`: repaired as `{"type": "object"}` (any arguments).
    ToolWithoutInputSchema,
}

impl Fault {
    pub const ALL: [Fault; 3] = [
        Fault::NullOptionalFields,
        Fault::ContentWithoutType,
        Fault::ToolWithoutInputSchema,
    ];

    /// The name a policy uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::NullOptionalFields => "null-optional-fields",
            Fault::ContentWithoutType => "content-without-type",
            Fault::ToolWithoutInputSchema => "tool-without-input-schema",
        }
    }

    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`Fault`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults(u8);

impl Faults {
    pub fn insert(&mut self, fault: Fault) {
        self.0 |= fault.bit();
    }

    pub fn contains(self, fault: Fault) -> bool {
        self.0 & fault.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Repair the faults of this set in `value` (a message's params or result); whether
    /// anything changed. Each repair touches only its own fault (see [`Fault`]), so the
    /// repaired value fails validation for every fault outside the set. (That holds for
    /// removing `null` members because no vendored schema has `not`, `oneOf`,
    /// `additionalProperties: false` or another keyword that a missing optional member could
    /// satisfy where its presence did not: a unit test keeps it so.)
    pub fn repair(self, value: &mut Value) -> bool {
        if self.is_empty() {
            return false;
        }
        self.repair_in(value, None)
    }

    /// `key`: the member of the parent object that holds `value` (for array elements, the
    /// member holding the array).
    fn repair_in(self, value: &mut Value, key: Option<&str>) -> bool {
        let mut changed = false;
        match value {
            Value::Object(members) => {
                if self.contains(Fault::NullOptionalFields) {
                    let before = members.len();
                    members.retain(|_, v| !v.is_null());
                    changed |= members.len() != before;
                }
                match key {
                    Some("content") if self.contains(Fault::ContentWithoutType) => {
                        changed |= infer_content_type(members);
                    }
                    Some("tools")
                        if self.contains(Fault::ToolWithoutInputSchema)
                            && members.get("name").is_some_and(Value::is_string)
                            && !members.contains_key("inputSchema") =>
                    {
                        members.insert("inputSchema".into(), serde_json::json!({"type": "object"}));
                        changed = true;
                    }
                    _ => {}
                }
                for (k, v) in members.iter_mut() {
                    changed |= self.repair_in(v, Some(k));
                }
            }
            Value::Array(items) => {
                for item in items {
                    // An element stands where its array does (`content: [...]`, `tools: [...]`).
                    changed |= self.repair_in(item, key);
                }
            }
            _ => {}
        }
        changed
    }
}

/// Give a content item without `type` the one its members imply; nothing when they imply none
/// or more than one (the fault then stays).
fn infer_content_type(item: &mut serde_json::Map<String, Value>) -> bool {
    if item.contains_key("type") {
        return false;
    }
    let has = |k: &str| item.contains_key(k);
    let shapes = [has("text"), has("data"), has("resource"), has("uri")];
    if shapes.iter().filter(|s| **s).count() != 1 {
        return false;
    }
    let mime = item.get("mimeType").and_then(Value::as_str).unwrap_or("");
    let kind = if has("text") {
        "text"
    } else if has("resource") {
        "resource"
    } else if has("uri") {
        "resource_link"
    } else if mime.starts_with("image/") {
        "image"
    } else if mime.starts_with("audio/") {
        "audio"
    } else {
        return false;
    };
    item.insert("type".into(), Value::from(kind));
    true
}

/// Where a method's parts live in one version's document.
#[derive(Debug, Clone)]
struct MethodShape {
    /// JSON pointer (`#/$defs/...`) of the `params` schema.
    params: Option<String>,
    params_required: bool,
    /// JSON pointer of the result schema (requests only).
    result: Option<String>,
    /// The two validators once looked up: the per-message path then takes no lock and hashes
    /// no pointer.
    params_validator: OnceLock<Option<Arc<Validator>>>,
    result_validator: OnceLock<Option<Arc<Validator>>>,
}

/// One protocol version's compiled schema.
pub struct VersionSchema {
    pub version: &'static str,
    /// The vendored document, with its known faults patched.
    doc: Value,
    methods: Map<String, MethodShape>,
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
            if let Some(parts) = self.method(method) {
                parts.params_validator();
                parts.result_validator();
            }
        }
    }

    /// Whether this version defines `method`.
    pub fn knows(&self, method: &str) -> bool {
        self.methods.contains_key(method)
    }

    /// The schemas of `method`'s parts; `None` when this version does not define it. One
    /// lookup serves every check of a message.
    pub fn method(&self, method: &str) -> Option<MethodSchema<'_>> {
        self.methods.get(method).map(|shape| MethodSchema {
            schema: self,
            shape,
        })
    }

    /// Validate a request's or notification's `params` (`None`: absent).
    pub fn check_params(&self, method: &str, params: Option<&Value>) -> Check {
        self.method(method)
            .map_or(Check::Unchecked, |m| m.check_params(params))
    }

    /// Validate the result answering a request of `method`.
    pub fn check_result(&self, method: &str, result: &Value) -> Check {
        self.method(method)
            .map_or(Check::Unchecked, |m| m.check_result(result))
    }
}

/// One method of a version: see [`VersionSchema::method`].
#[derive(Clone, Copy)]
pub struct MethodSchema<'a> {
    schema: &'a VersionSchema,
    shape: &'a MethodShape,
}

impl MethodSchema<'_> {
    /// Validate a request's or notification's `params` (`None`: absent).
    pub fn check_params(&self, params: Option<&Value>) -> Check {
        let shape = self.shape;
        match (params, &shape.params) {
            (None, _) if shape.params_required => Check::Invalid("params: required".into()),
            (None, _) | (_, None) => Check::Valid,
            (Some(params), Some(_)) => check(self.params_validator(), params, "params"),
        }
    }

    /// Validate the result answering a request of this method.
    pub fn check_result(&self, result: &Value) -> Check {
        check(self.result_validator(), result, "result")
    }

    /// The params validator; `None` without params or when it does not compile.
    fn params_validator(&self) -> Option<&Validator> {
        self.validator(self.shape.params.as_deref(), &self.shape.params_validator)
    }

    /// The result validator, as [`MethodSchema::params_validator`].
    fn result_validator(&self) -> Option<&Validator> {
        self.validator(self.shape.result.as_deref(), &self.shape.result_validator)
    }

    /// The validator at `pointer`, looked up once into `slot` (then no lock, no hashing).
    fn validator<'s>(
        &'s self,
        pointer: Option<&str>,
        slot: &'s OnceLock<Option<Arc<Validator>>>,
    ) -> Option<&'s Validator> {
        let pointer = pointer?;
        slot.get_or_init(|| self.schema.validator(pointer))
            .as_deref()
    }
}

fn check(validator: Option<&Validator>, value: &Value, what: &str) -> Check {
    let Some(validator) = validator else {
        return Check::Unchecked;
    };
    // The boolean check is the cheaper pass (no error built, no location tracked); only a
    // value that fails it is walked again for the first violation.
    if validator.is_valid(value) {
        return Check::Valid;
    }
    match validator.validate(value) {
        Ok(()) => Check::Valid,
        Err(e) => Check::Invalid(format!("{what}{}: {e}", e.instance_path())),
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
        // `run` starts the thread once its supervisor is forked (see `crate::deferred`).
        crate::deferred::run_after_launch(move || {
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
        });
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
fn method_shapes(doc: &Value) -> Option<Map<String, MethodShape>> {
    let (key, defs) = definitions(doc)?;
    let pointer = |name: &str| format!("#/{key}/{name}");
    let mut methods = Map::default();
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
                params_validator: OnceLock::new(),
                result_validator: OnceLock::new(),
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

    /// [`Faults::repair`] removes `null` members: sound only while no schema can be satisfied
    /// by a missing optional member where the member's presence failed.
    #[test]
    fn schema_has_no_keyword_that_null_removal_could_satisfy() {
        fn walk(schema: &Value, at: &str, found: &mut Vec<String>) {
            let Some(object) = schema.as_object() else {
                if let Some(items) = schema.as_array() {
                    items.iter().for_each(|s| walk(s, at, found));
                }
                return;
            };
            for (key, value) in object {
                let here = format!("{at}/{key}");
                match key.as_str() {
                    "not"
                    | "oneOf"
                    | "if"
                    | "maxProperties"
                    | "dependencies"
                    | "dependentRequired"
                    | "dependentSchemas"
                    | "propertyNames"
                    | "unevaluatedProperties" => found.push(here),
                    "additionalProperties" if value == &Value::Bool(false) => found.push(here),
                    // Data, not schemas.
                    "const" | "enum" | "default" | "examples" => {}
                    // Maps of names to schemas.
                    "properties" | "patternProperties" | "$defs" | "definitions" => {
                        if let Some(named) = value.as_object() {
                            for (name, s) in named {
                                walk(s, &format!("{here}/{name}"), found);
                            }
                        }
                    }
                    _ => walk(value, &here, found),
                }
            }
        }
        for (version, text) in SOURCES {
            let doc: Value = serde_json::from_str(text).unwrap();
            let mut found = Vec::new();
            walk(&doc, "", &mut found);
            assert!(found.is_empty(), "{version}: {found:?}");
        }
    }

    fn tolerating(faults: &[Fault]) -> Faults {
        let mut set = Faults::default();
        faults.iter().for_each(|f| set.insert(*f));
        set
    }

    /// The check of `value` once `faults` are repaired in a copy.
    fn repaired(s: &VersionSchema, method: &str, faults: &[Fault], value: &Value) -> Check {
        let mut copy = value.clone();
        tolerating(faults).repair(&mut copy);
        s.check_result(method, &copy)
    }

    #[test]
    fn schema_tolerated_faults_are_repaired_and_others_still_fail() {
        use Fault::*;
        let schemas = Schemas::new();
        for &version in KNOWN_VERSIONS {
            let s = schemas.get(version).unwrap();
            let tools =
                json!({"tools": [{"name": "a"}, {"name": "b", "inputSchema": {"type": "object"}}]});
            let bad_tools = json!({"tools": [{"name": "a", "description": 5}]});
            let list = |v: &Value| {
                let mut v = v.clone();
                if version == "2026-07-28" {
                    v["resultType"] = json!("complete");
                    v["cacheScope"] = json!("private");
                    v["ttlMs"] = json!(0);
                }
                v
            };
            let (tools, bad_tools) = (list(&tools), list(&bad_tools));
            assert!(matches!(
                s.check_result("tools/list", &tools),
                Check::Invalid(_)
            ));
            assert_eq!(
                repaired(s, "tools/list", &[ToolWithoutInputSchema], &tools),
                Check::Valid,
                "{version}"
            );
            assert!(
                matches!(
                    repaired(s, "tools/list", &Fault::ALL, &bad_tools),
                    Check::Invalid(_)
                ),
                "{version}"
            );
            if version == "2026-07-28" {
                // Its tools/call result is `InputRequiredResult | CallToolResult`, and the first
                // accepts any object with a `resultType`: no content fault fails there.
                continue;
            }
            let ok = json!({"content": [{"type": "text", "text": "ok"}]});
            assert_eq!(s.check_result("tools/call", &ok), Check::Valid, "{version}");
            let with = |patch: Value| {
                let mut v = ok.clone();
                for (k, val) in patch.as_object().unwrap() {
                    v[k] = val.clone();
                }
                v
            };
            let nulls = with(
                json!({"isError": null, "content": [{"type": "text", "text": "a", "annotations": null}]}),
            );
            let untyped = with(
                json!({"content": [{"text": "a"}, {"data": "AA==", "mimeType": "image/png"}]}),
            );
            let ambiguous = with(json!({"content": [{"text": "a", "data": "AA=="}]}));
            // A tolerated fault next to one that is not, in the same item.
            let untyped_bad =
                with(json!({"content": [{"text": "a", "annotations": {"priority": "high"}}]}));
            let null_bad = with(json!({"isError": null, "content": [{"type": "text", "text": 5}]}));
            let null_required = with(json!({"content": [{"type": "text", "text": null}]}));
            for v in [
                &nulls,
                &untyped,
                &ambiguous,
                &untyped_bad,
                &null_bad,
                &null_required,
            ] {
                assert!(
                    matches!(s.check_result("tools/call", v), Check::Invalid(_)),
                    "{version} {v}"
                );
            }
            assert_eq!(
                repaired(s, "tools/call", &[NullOptionalFields], &nulls),
                Check::Valid,
                "{version}"
            );
            assert_eq!(
                repaired(s, "tools/call", &[ContentWithoutType], &untyped),
                Check::Valid,
                "{version}"
            );
            for (faults, v) in [
                (&[ContentWithoutType][..], &nulls),
                (&[NullOptionalFields], &untyped),
                (&Fault::ALL, &ambiguous),
                (&Fault::ALL, &untyped_bad),
                (&Fault::ALL, &null_bad),
                (&Fault::ALL, &null_required),
            ] {
                assert!(
                    matches!(repaired(s, "tools/call", faults, v), Check::Invalid(_)),
                    "{version} {faults:?} {v}"
                );
            }
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
