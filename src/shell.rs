//! Commands shown to the user as POSIX shell lines they can paste.

/// `word` quoted for a POSIX shell when it needs it. A NUL, which no shell word can hold, is
/// shown escaped instead.
pub fn quote_word(word: &str) -> String {
    match shlex::try_quote(word) {
        Ok(quoted) => quoted.into_owned(),
        Err(_) => format!("{word:?}"),
    }
}

/// `words` as one shell line.
pub fn join<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    words
        .into_iter()
        .map(|w| quote_word(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_round_trips_through_a_shell_split() {
        let words = [
            "node",
            "/srv/my server.js",
            "it's",
            "",
            "--root=/x",
            "$HOME",
        ];
        let line = join(words);
        assert_eq!(shlex::split(&line), Some(words.map(str::to_owned).to_vec()));
        assert_eq!(quote_word("plain/path-1.2"), "plain/path-1.2");
    }
}
