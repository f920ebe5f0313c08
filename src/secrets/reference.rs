//! `SERVICE/ACCOUNT`: what names one secret in the keychain.

use std::fmt;

use super::SecretError;

/// What marks an environment value as a keychain reference: `keyring:SERVICE/ACCOUNT`.
pub const PREFIX: &str = "keyring:";

/// One keychain entry: the service it is for (`github`) and the account (`me`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub service: String,
    pub account: String,
}

impl SecretRef {
    /// `SERVICE/ACCOUNT`, or `keyring:SERVICE/ACCOUNT` as `--env` takes it. The account is
    /// everything after the first `/`, so it may hold slashes of its own.
    pub fn parse(text: &str) -> Result<SecretRef, SecretError> {
        let bare = text.strip_prefix(PREFIX).unwrap_or(text);
        let bad = |why: &'static str| SecretError::BadReference {
            text: text.to_owned(),
            why,
        };
        let (service, account) = bare.split_once('/').ok_or_else(|| bad("no `/`"))?;
        if service.is_empty() || account.is_empty() {
            return Err(bad("the service and the account must not be empty"));
        }
        if bare.chars().any(char::is_control) {
            return Err(bad("it holds a control character"));
        }
        Ok(SecretRef {
            service: service.to_owned(),
            account: account.to_owned(),
        })
    }

    /// The reference an environment value makes, if it is one (`keyring:…`).
    pub fn in_env_value(value: &str) -> Option<Result<SecretRef, SecretError>> {
        value.starts_with(PREFIX).then(|| SecretRef::parse(value))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_splits_at_the_first_slash() {
        let r = SecretRef::parse("keyring:github/me/work").unwrap();
        assert_eq!(
            (r.service.as_str(), r.account.as_str()),
            ("github", "me/work")
        );
        assert_eq!(r.to_string(), "github/me/work");
        assert_eq!(
            SecretRef::parse("github/me").unwrap(),
            SecretRef::parse("keyring:github/me").unwrap()
        );
    }

    #[test]
    fn reference_without_service_or_account_is_refused_with_the_form() {
        for text in ["keyring:github", "keyring:/me", "github/", "a/b\nc"] {
            let err = SecretRef::parse(text).unwrap_err().to_string();
            assert!(err.contains("SERVICE/ACCOUNT"), "{err}");
        }
    }

    #[test]
    fn only_values_with_the_prefix_are_references() {
        assert!(SecretRef::in_env_value("ghp_plain_token").is_none());
        assert!(SecretRef::in_env_value("keyring:github/me").is_some());
    }
}
