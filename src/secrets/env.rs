//! Replace the `keyring:SERVICE/ACCOUNT` values of the server's environment with the secrets
//! they name.

use std::collections::BTreeMap;

use super::{EnvSecretError, SecretError, SecretRef};

/// The variables whose value came from the keychain (to redact them wherever they appear).
#[derive(Debug, Default)]
pub struct ResolvedEnv {
    pub names: Vec<String>,
}

/// Passed variables (`--env NAME`, `[env] pass`) whose value in the guard's environment is a
/// keychain reference are set instead, so the reference is resolved like a set value: a host
/// config's `"env": {"TOKEN": "keyring:github/me"}` then works through `wrap`'s `--env TOKEN`.
/// A value already set for the name wins, as it does over a passed one.
pub fn set_passed_references(
    pass: &[String],
    set: &mut BTreeMap<String, String>,
    guard_env: impl Fn(&str) -> Option<String>,
) {
    for name in pass {
        if set.contains_key(name) {
            continue;
        }
        if let Some(value) = guard_env(name).filter(|v| v.starts_with(super::PREFIX)) {
            set.insert(name.clone(), value);
        }
    }
}

/// Resolve every keychain reference in `set` in place through [`super::store::read`]; the
/// first failure stops the launch (a server started without its token fails later, obscurely).
pub fn resolve_env(set: &mut BTreeMap<String, String>) -> Result<ResolvedEnv, EnvSecretError> {
    resolve_env_with(set, super::store::read)
}

fn resolve_env_with(
    set: &mut BTreeMap<String, String>,
    read: impl Fn(&SecretRef) -> Result<String, SecretError>,
) -> Result<ResolvedEnv, EnvSecretError> {
    let mut resolved = ResolvedEnv::default();
    for (name, value) in set.iter_mut() {
        let Some(reference) = SecretRef::in_env_value(value) else {
            continue;
        };
        let failed = |source| EnvSecretError {
            name: name.clone(),
            source,
        };
        *value = reference.and_then(|r| read(&r)).map_err(failed)?;
        resolved.names.push(name.clone());
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn references_are_replaced_and_plain_values_kept() {
        let mut set = env(&[("TOKEN", "keyring:github/me"), ("MODE", "fast")]);
        let resolved = resolve_env_with(&mut set, |r| Ok(format!("secret-of-{r}"))).unwrap();
        assert_eq!(set["TOKEN"], "secret-of-github/me");
        assert_eq!(set["MODE"], "fast");
        assert_eq!(resolved.names, ["TOKEN"]);
    }

    #[test]
    fn passed_references_become_set_values_and_set_values_win() {
        let mut set = env(&[("B", "keyring:x/set")]);
        let pass = ["A", "B", "C"].map(String::from);
        let guard = |n: &str| match n {
            "A" => Some("keyring:x/passed".to_owned()),
            "B" => Some("keyring:x/other".to_owned()),
            _ => Some("plain".to_owned()),
        };
        set_passed_references(&pass, &mut set, guard);
        assert_eq!(set["A"], "keyring:x/passed");
        assert_eq!(set["B"], "keyring:x/set");
        assert!(!set.contains_key("C"));
    }

    #[test]
    fn a_missing_secret_names_the_variable_and_the_reference() {
        let mut set = env(&[("TOKEN", "keyring:github/me")]);
        let err = resolve_env_with(&mut set, |r| {
            Err(SecretError::Missing {
                reference: r.clone(),
                store: "the test store".into(),
                hint: "",
            })
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("TOKEN"), "{text}");
        assert!(text.contains("mcp-guard secret set github/me"), "{text}");
    }
}
