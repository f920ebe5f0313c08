//! An error and its causes as one line. Many errors already include their cause in their own
//! text (`cannot read policy file x: No such file or directory (os error 2)`): printing the
//! chain as anyhow's `{:#}` does would say that cause twice.

use std::error::Error;

/// `outer: cause: root cause`, each cause said once.
pub fn describe(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read policy file p.toml: {0}")]
    struct ReadError(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let said = io.to_string();
        let err = anyhow::Error::new(ReadError(io)).context("cannot load the policy");
        let text = describe(err.as_ref());
        assert_eq!(text.matches(&said).count(), 1, "{text}");
        assert!(
            text.starts_with("cannot load the policy: cannot read"),
            "{text}"
        );
    }
}
