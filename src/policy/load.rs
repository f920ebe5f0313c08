//! Reading policy layers: the built-in base, shipped profiles and files, following `extends`
//! (profiles by name, files relative to the file that names them) and refusing cycles.

use std::path::{Path, PathBuf};

use super::error::{closest, from_toml, Diagnostic, Diagnostics, PolicyError};
use super::model::Policy;
use super::profiles::{self, BUILTIN};
use super::validate::validate;
use super::values::Val;
use super::Origin;
use crate::sandbox::NetworkMode;

/// Parse and validate one policy document; `file` names it in errors.
pub fn parse_policy(file: &str, text: &str) -> Result<Policy, PolicyError> {
    let mut policy: Policy = toml::from_str(text).map_err(|e| from_toml(file, text, &e))?;
    let problems = validate(file, text, &policy);
    if !problems.is_empty() {
        return Err(PolicyError::Invalid(Diagnostics(problems)));
    }
    // Hosts without a mode mean "only these hosts" in this layer, ports "only these ports".
    let net = &mut policy.network;
    if net.mode.is_none() {
        if let Some(first) = net.allow.first() {
            net.mode = Some(Val {
                value: NetworkMode::Hosts,
                span: first.span.clone(),
                origin: None,
            });
        } else if let Some(first) = net.connect.first().or(net.bind.first()) {
            net.mode = Some(Val {
                value: NetworkMode::Ports,
                span: first.span.clone(),
                origin: None,
            });
        }
    }
    Ok(policy)
}

/// The layers below the CLI flags, lowest first: built-in, then `profile` (or `default` when
/// neither a profile nor the file's `extends` chooses a base), then `file` and what it extends.
pub fn load_layers(
    profile: Option<&str>,
    file: Option<&Path>,
) -> Result<Vec<(Origin, Policy)>, PolicyError> {
    let mut loader = Loader::default();
    loader
        .layers
        .push((Origin::Builtin, parse_policy("built-in policy", BUILTIN)?));
    if let Some(name) = profile {
        loader.profile(name, None)?;
    }
    let Some(path) = file else {
        if profile.is_none() {
            loader.profile("default", None)?;
        }
        return Ok(loader.layers);
    };
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_owned(),
        source,
    })?;
    let label = path.display().to_string();
    let policy = parse_policy(&label, &text)?;
    if profile.is_none() && policy.extends.is_empty() {
        loader.profile("default", None)?;
    }
    loader.file_parsed(path, label, &text, policy)?;
    Ok(loader.layers)
}

/// Check a policy file and everything it extends.
/// Check a policy file (and what it extends); `Ok` carries advice on valid but weak settings.
pub fn check_file(path: &Path) -> Result<Option<String>, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_owned(),
        source,
    })?;
    let label = path.display().to_string();
    let policy = parse_policy(&label, &text)?;
    let advice = super::validate::network_advice(&policy);
    Loader::default().file_parsed(path, label, &text, policy)?;
    Ok(advice)
}

/// Where an `extends` entry came from, for errors about it.
struct Referrer<'a> {
    file: &'a str,
    text: &'a str,
    entry: &'a Val<String>,
}

impl Referrer<'_> {
    fn diag(&self, message: String) -> Diagnostic {
        Diagnostic::at(self.file, self.text, self.entry.span.clone(), message)
    }
}

#[derive(Default)]
struct Loader {
    layers: Vec<(Origin, Policy)>,
    /// Sources already loaded (a diamond loads its shared base once).
    done: Vec<String>,
    /// The chain being loaded, for cycle detection: (key, label).
    stack: Vec<(String, String)>,
}

impl Loader {
    /// Refuse `key` if it is already on the stack; say whether it was loaded before.
    fn enter(
        &mut self,
        key: &str,
        label: &str,
        from: Option<&Referrer>,
    ) -> Result<bool, PolicyError> {
        if self.stack.iter().any(|(k, _)| k == key) {
            let chain: Vec<&str> = self
                .stack
                .iter()
                .map(|(_, l)| l.as_str())
                .chain([label])
                .collect();
            let message = format!("`extends` cycle: {}", chain.join(" → "));
            let help = "a policy cannot build on itself; remove one of these `extends` entries";
            return Err(match from {
                Some(r) => r.diag(message).with_help(help).into(),
                None => PolicyError::Invalid(Diagnostics(vec![])),
            });
        }
        Ok(self.done.iter().any(|k| k == key))
    }

    fn profile(&mut self, name: &str, from: Option<&Referrer>) -> Result<(), PolicyError> {
        let Some(profile) = profiles::find(name) else {
            let known = profiles::names().join(", ");
            let guess = closest(name, profiles::names())
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            return Err(match from {
                Some(r) => r
                    .diag(format!("unknown profile `{name}`"))
                    .with_help(format!(
                        "{guess}shipped profiles: {known}; a file must be written as a path, e.g. \"./{name}.toml\""
                    ))
                    .into(),
                None => PolicyError::UnknownProfile { name: name.into(), hint: format!(" ({guess}shipped profiles: {known})") },
            });
        };
        let key = format!("profile:{name}");
        let label = format!("profile {name}");
        if self.enter(&key, &label, from)? {
            return Ok(());
        }
        let policy = parse_policy(&label, profile.text)?;
        self.stack.push((key.clone(), label.clone()));
        for entry in &policy.extends {
            let r = Referrer {
                file: &label,
                text: profile.text,
                entry,
            };
            self.profile(&entry.value, Some(&r))?;
        }
        self.stack.pop();
        self.done.push(key);
        self.layers.push((Origin::Profile(name.into()), policy));
        Ok(())
    }

    fn file(&mut self, path: &Path, label: String, from: &Referrer) -> Result<(), PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            PolicyError::from(
                from.diag(format!("cannot read `{}` ({}): {e}", from.entry.value, path.display()))
                    .with_help("a file in `extends` is relative to the file that names it; a bare name is a shipped profile"),
            )
        })?;
        let policy = parse_policy(&label, &text)?;
        self.file_parsed_from(path, label, &text, policy, Some(from))
    }

    fn file_parsed(
        &mut self,
        path: &Path,
        label: String,
        text: &str,
        policy: Policy,
    ) -> Result<(), PolicyError> {
        self.file_parsed_from(path, label, text, policy, None)
    }

    fn file_parsed_from(
        &mut self,
        path: &Path,
        label: String,
        text: &str,
        policy: Policy,
        from: Option<&Referrer>,
    ) -> Result<(), PolicyError> {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let key = format!("file:{}", canonical.display());
        if self.enter(&key, &label, from)? {
            return Ok(());
        }
        self.stack.push((key.clone(), label.clone()));
        let dir = path.parent().map(Path::to_owned).unwrap_or_default();
        for entry in &policy.extends {
            let r = Referrer {
                file: &label,
                text,
                entry,
            };
            let name = entry.value.as_str();
            if is_file_ref(name) {
                let rel = name.strip_prefix("./").unwrap_or(name);
                let target: PathBuf = dir.join(rel);
                self.file(&target, target.display().to_string(), &r)?;
            } else {
                self.profile(name, Some(&r))?;
            }
        }
        self.stack.pop();
        self.done.push(key);
        self.layers.push((Origin::File(path.to_owned()), policy));
        Ok(())
    }
}

/// `extends` entries with a `/` or a `.toml` suffix are files; bare names are profiles.
fn is_file_ref(name: &str) -> bool {
    name.contains('/') || name.ends_with(".toml")
}
