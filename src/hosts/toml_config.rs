//! Codex's `config.toml`: `[mcp_servers.NAME]` tables with `command`, `args` and `env`.
//! `toml_edit` keeps the rest of the file (comments, order, spacing) as it was; unwrap puts back
//! the backup's own `command` and `args` items, so the file round-trips byte for byte.

use toml_edit::{Array, DocumentMut, Item, TableLike, Value};

use super::launch_args::{original_launch, valid_env_name, wrapped_args};
use super::profile_choice::profile_for;
use super::{ConfiguredEntry, EntryReport, Outcome, Rewrite};

const SERVERS: &str = "mcp_servers";
const SCOPE: &str = "mcp_servers";

pub fn wrap(text: &str, guard_command: &str) -> Result<Rewrite, String> {
    let mut doc = parse(text)?;
    let mut reports = Vec::new();
    for (name, entry) in entries_mut(&mut doc) {
        let outcome = match stdio_launch(entry) {
            Err(outcome) => outcome,
            Ok((command, args, _)) if original_launch(&command, &args).is_some() => {
                Outcome::AlreadyWrapped
            }
            Ok((command, args, env_names)) => match env_names.iter().find(|n| !valid_env_name(n)) {
                Some(bad) => Outcome::BadEnvName(bad.clone()),
                None => {
                    let profile = profile_for(&command, &args);
                    let wrapped = wrapped_args(profile, &env_names, &command, &args);
                    set_launch(entry, guard_command, &wrapped);
                    Outcome::Wrapped { profile }
                }
            },
        };
        reports.push(report(name, outcome));
    }
    Ok(Rewrite {
        text: finish(text, &doc, &reports),
        entries: reports,
    })
}

pub fn unwrap(text: &str, backup: Option<&str>) -> Result<Rewrite, String> {
    let mut doc = parse(text)?;
    let backup = backup.and_then(|b| parse(b).ok());
    let mut reports = Vec::new();
    for (name, entry) in entries_mut(&mut doc) {
        let outcome = match stdio_launch(entry) {
            Err(outcome) => outcome,
            Ok((command, args, _)) => match original_launch(&command, &args) {
                None => Outcome::NotWrapped,
                Some((command, args)) => {
                    let original = backup
                        .as_ref()
                        .and_then(|b| b.get(SERVERS)?.as_table_like()?.get(&name)?.as_table_like())
                        .filter(|o| {
                            stdio_launch(*o).is_ok_and(|(c, a, _)| c == command && a == args)
                        });
                    match original {
                        Some(original) => restore(entry, original),
                        None => set_launch(entry, &command, &args),
                    }
                    Outcome::Unwrapped
                }
            },
        };
        reports.push(report(name, outcome));
    }
    Ok(Rewrite {
        text: finish(text, &doc, &reports),
        entries: reports,
    })
}

/// Every entry and its launch as written, for `mcp-guard status`.
pub fn configured(text: &str) -> Result<Vec<ConfiguredEntry>, String> {
    let mut doc = parse(text)?;
    Ok(entries_mut(&mut doc)
        .into_iter()
        .map(|(name, entry)| ConfiguredEntry {
            scope: SCOPE.to_owned(),
            name,
            launch: stdio_launch(&*entry).map(|(command, args, _)| (command, args)),
        })
        .collect())
}

fn parse(text: &str) -> Result<DocumentMut, String> {
    text.parse::<DocumentMut>()
        .map_err(|e| e.to_string().trim_end().to_owned())
}

/// The text unchanged when no entry changed: re-rendering could still normalise something.
fn finish(text: &str, doc: &DocumentMut, reports: &[EntryReport]) -> String {
    let changed = reports
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Wrapped { .. } | Outcome::Unwrapped));
    if changed {
        doc.to_string()
    } else {
        text.to_owned()
    }
}

fn report(name: String, outcome: Outcome) -> EntryReport {
    EntryReport {
        scope: SCOPE.to_owned(),
        name,
        outcome,
    }
}

fn entries_mut(doc: &mut DocumentMut) -> Vec<(String, &mut dyn TableLike)> {
    let Some(servers) = doc.get_mut(SERVERS).and_then(Item::as_table_like_mut) else {
        return Vec::new();
    };
    servers
        .iter_mut()
        .filter_map(|(name, item)| Some((name.get().to_owned(), item.as_table_like_mut()?)))
        .collect()
}

type Launch = (String, Vec<String>, Vec<String>);

/// `(command, args, env names)` of a stdio entry.
fn stdio_launch(entry: &dyn TableLike) -> Result<Launch, Outcome> {
    if entry.get("url").is_some() {
        return Err(Outcome::Remote);
    }
    let command = entry
        .get("command")
        .and_then(Item::as_str)
        .ok_or(Outcome::NoCommand)?;
    let args = match entry.get("args") {
        None => Vec::new(),
        Some(item) => item
            .as_array()
            .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
            .ok_or(Outcome::BadArgs)?,
    };
    let env_names = entry
        .get("env")
        .and_then(Item::as_table_like)
        .map_or_else(Vec::new, |env| {
            env.iter().map(|(k, _)| k.to_owned()).collect()
        });
    Ok((command.to_owned(), args, env_names))
}

fn set_launch(entry: &mut dyn TableLike, command: &str, args: &[String]) {
    let mut array: Array = args.iter().map(String::as_str).collect();
    array.decor_mut().clear();
    set_value(entry, "command", Value::from(command));
    set_value(entry, "args", Value::Array(array));
}

/// Replace a value, keeping the spacing around it (`command = "x"  # comment`).
fn set_value(entry: &mut dyn TableLike, key: &str, mut value: Value) {
    match entry.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        None => {
            entry.insert(key, Item::Value(value));
        }
    }
}

/// Put back the backup's own `command` and `args` items (their text and spacing).
fn restore(entry: &mut dyn TableLike, original: &dyn TableLike) {
    for key in ["command", "args"] {
        match original.get(key) {
            Some(item) => {
                entry.insert(key, item.clone());
            }
            None => {
                entry.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INLINE_AND_DOTTED: &str = "[mcp_servers]\n\
        x = { command = \"npx\", args = [\"-y\", \"@modelcontextprotocol/server-memory\"] }\n\n\
        [mcp_servers.y]\ncommand = \"uvx\"  # git\nargs = [\n  \"mcp-server-git\",\n]\nenv.TOKEN = \"abc\"\n";

    #[test]
    fn inline_tables_and_dotted_env_round_trip() {
        let wrapped = wrap(INLINE_AND_DOTTED, "mcp-guard").unwrap();
        assert!(wrapped.text.contains(
            "x = { command = \"mcp-guard\", args = [\"run\", \"--profile\", \"memory\", \"--\", \"npx\""
        ));
        assert!(wrapped.text.contains(
            "command = \"mcp-guard\"  # git\nargs = [\"run\", \"--profile\", \"git\", \"--env\", \"TOKEN\", \"--\", \"uvx\", \"mcp-server-git\"]\n"
        ));
        let back = unwrap(&wrapped.text, Some(INLINE_AND_DOTTED)).unwrap();
        assert_eq!(back.text, INLINE_AND_DOTTED);
        let again = wrap(&wrapped.text, "mcp-guard").unwrap();
        assert_eq!(again.text, wrapped.text);
        assert!(again
            .entries
            .iter()
            .all(|e| e.outcome == Outcome::AlreadyWrapped));
    }

    #[test]
    fn configured_entries_give_the_launch_as_written() {
        let wrapped = wrap(INLINE_AND_DOTTED, "/bin/mcp-guard").unwrap().text;
        let entries =
            configured(&format!("{wrapped}[mcp_servers.r]\nurl = \"http://x\"\n")).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["x", "y", "r"]);
        let (command, args) = entries[1].launch.clone().unwrap();
        assert_eq!(command, "/bin/mcp-guard");
        assert_eq!(args.last().map(String::as_str), Some("mcp-server-git"));
        assert_eq!(entries[2].launch, Err(Outcome::Remote));
    }
}
