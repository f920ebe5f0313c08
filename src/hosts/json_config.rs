//! JSON host configs (Claude Desktop, Claude Code, Cursor, Windsurf, Gemini CLI) and VS Code's
//! JSON with comments. The text is parsed for positions only: a rewrite replaces the `command`
//! and `args` values of each entry and keeps every other byte, so comments, indentation and
//! key order survive and the host sees the file it wrote, plus our change.

use std::collections::HashMap;

use jsonc_parser::ast::{Array, Object, ObjectProp, Value};
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions};

use super::launch_args::{original_launch, valid_env_name, wrapped_args};
use super::profile_choice::profile_for;
use super::splice::{apply, Splice};
use super::{ConfiguredEntry, EntryReport, Outcome, Rewrite};

/// Keys of an entry that make it a remote (HTTP/SSE) server: `url` (most hosts), `serverUrl`
/// (Windsurf), `httpUrl` (Gemini CLI).
const REMOTE_KEYS: &[&str] = &["url", "serverUrl", "httpUrl"];
const REMOTE_TYPES: &[&str] = &["http", "sse", "streamable-http", "streamableHttp"];

pub fn wrap(text: &str, guard_command: &str) -> Result<Rewrite, String> {
    let root = parse(text)?;
    let mut splices = Vec::new();
    let mut reports = Vec::new();
    for entry in entries(root.as_ref()) {
        let outcome = match stdio_launch(entry.object) {
            Err(outcome) => outcome,
            Ok(launch) if original_launch(&launch.command, &launch.args).is_some() => {
                Outcome::AlreadyWrapped
            }
            Ok(_) if entry.object.get("envFile").is_some() => Outcome::EnvFile,
            Ok(launch) => match launch.env_names.iter().find(|n| !valid_env_name(n)) {
                Some(bad) => Outcome::BadEnvName(bad.clone()),
                None => {
                    let profile = profile_for(&launch.command, &launch.args);
                    let args =
                        wrapped_args(profile, &launch.env_names, &launch.command, &launch.args);
                    splices.extend(set_launch(&launch, guard_command, &args));
                    Outcome::Wrapped { profile }
                }
            },
        };
        reports.push(entry.report(outcome));
    }
    Ok(Rewrite {
        text: apply(text, splices),
        entries: reports,
    })
}

pub fn unwrap(text: &str, backup: Option<&str>) -> Result<Rewrite, String> {
    let root = parse(text)?;
    // A backup that no longer parses only costs the original formatting.
    let backup_root = backup.and_then(|b| parse(b).ok()).flatten();
    let originals: HashMap<(String, String), Launch> = entries(backup_root.as_ref())
        .into_iter()
        .filter_map(|e| {
            Some((
                (e.scope.clone(), e.name.clone()),
                stdio_launch(e.object).ok()?,
            ))
        })
        .collect();
    let backup_text = backup.unwrap_or_default();
    let mut splices = Vec::new();
    let mut reports = Vec::new();
    for entry in entries(root.as_ref()) {
        let outcome = match stdio_launch(entry.object) {
            Err(outcome) => outcome,
            Ok(launch) => match original_launch(&launch.command, &launch.args) {
                None => Outcome::NotWrapped,
                Some((command, args)) => {
                    let key = (entry.scope.clone(), entry.name.clone());
                    match originals
                        .get(&key)
                        .filter(|o| o.command == command && o.args == args)
                    {
                        Some(original) => {
                            splices.extend(restore(text, &launch, original, backup_text))
                        }
                        None => splices.extend(set_launch(&launch, &command, &args)),
                    }
                    Outcome::Unwrapped
                }
            },
        };
        reports.push(entry.report(outcome));
    }
    Ok(Rewrite {
        text: apply(text, splices),
        entries: reports,
    })
}

/// Every entry and its launch as written, for `mcp-guard status`.
pub fn configured(text: &str) -> Result<Vec<ConfiguredEntry>, String> {
    let root = parse(text)?;
    Ok(entries(root.as_ref())
        .into_iter()
        .map(|e| ConfiguredEntry {
            launch: stdio_launch(e.object).map(|l| (l.command, l.args)),
            scope: e.scope,
            name: e.name,
        })
        .collect())
}

/// The root value, `None` for an empty file.
fn parse(text: &str) -> Result<Option<Value<'_>>, String> {
    let options = ParseOptions::default();
    jsonc_parser::parse_to_ast(text, &CollectOptions::default(), &options)
        .map(|r| r.value)
        .map_err(|e| e.to_string())
}

/// A server entry and where it is.
struct Entry<'a> {
    scope: String,
    name: String,
    object: &'a Object<'a>,
}

impl Entry<'_> {
    fn report(&self, outcome: Outcome) -> EntryReport {
        EntryReport {
            scope: self.scope.clone(),
            name: self.name.clone(),
            outcome,
        }
    }
}

/// Every server entry: `mcpServers` (Claude, Cursor, Windsurf, Gemini), `servers` (VS Code's
/// mcp.json), `mcp.servers` (VS Code's settings.json) and Claude Code's per-project
/// `projects.PATH.mcpServers`.
fn entries<'a>(root: Option<&'a Value<'a>>) -> Vec<Entry<'a>> {
    let Some(root) = root.and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut maps: Vec<(String, &Object)> = Vec::new();
    for key in ["mcpServers", "servers"] {
        maps.extend(root.get_object(key).map(|m| (key.to_owned(), m)));
    }
    if let Some(servers) = root.get_object("mcp").and_then(|m| m.get_object("servers")) {
        maps.push(("mcp.servers".to_owned(), servers));
    }
    for project in root
        .get_object("projects")
        .map_or(&[][..], |p| &p.properties[..])
    {
        if let Some(servers) = project
            .value
            .as_object()
            .and_then(|p| p.get_object("mcpServers"))
        {
            maps.push((format!("project {}", project.name.as_str()), servers));
        }
    }
    maps.into_iter()
        .flat_map(|(scope, map)| {
            map.properties.iter().filter_map(move |prop| {
                Some(Entry {
                    scope: scope.clone(),
                    name: prop.name.as_str().to_owned(),
                    object: prop.value.as_object()?,
                })
            })
        })
        .collect()
}

/// A stdio entry's launch, with the positions of its values.
struct Launch<'a> {
    command: String,
    args: Vec<String>,
    env_names: Vec<String>,
    command_prop: &'a ObjectProp<'a>,
    args_prop: Option<&'a ObjectProp<'a>>,
}

fn stdio_launch<'a>(object: &'a Object<'a>) -> Result<Launch<'a>, Outcome> {
    let kind = object.get_string("type").map(|t| t.value.as_ref());
    if REMOTE_KEYS.iter().any(|k| object.get(k).is_some())
        || kind.is_some_and(|k| REMOTE_TYPES.contains(&k))
    {
        return Err(Outcome::Remote);
    }
    let command_prop = object.get("command").ok_or(Outcome::NoCommand)?;
    let command = command_prop
        .value
        .as_string_lit()
        .ok_or(Outcome::NoCommand)?;
    let args_prop = object.get("args");
    let args = match args_prop.map(|p| p.value.as_array().ok_or(Outcome::BadArgs)) {
        None => Vec::new(),
        Some(array) => strings(array?).ok_or(Outcome::BadArgs)?,
    };
    let env_names = object.get_object("env").map_or_else(Vec::new, |env| {
        env.properties
            .iter()
            .map(|p| p.name.as_str().to_owned())
            .collect()
    });
    Ok(Launch {
        command: command.value.to_string(),
        args,
        env_names,
        command_prop,
        args_prop,
    })
}

fn strings(array: &Array) -> Option<Vec<String>> {
    array
        .elements
        .iter()
        .map(|e| e.as_string_lit().map(|s| s.value.to_string()))
        .collect()
}

/// Splices that make the entry run `command args…`: both values replaced, or `args` added right
/// after `command` when the entry had none.
fn set_launch(launch: &Launch, command: &str, args: &[String]) -> Vec<Splice> {
    let command_range = launch.command_prop.value.range();
    let mut splices = vec![Splice {
        start: command_range.start,
        end: command_range.end,
        text: json_string(command),
    }];
    let args_text = format!(
        "[{}]",
        args.iter()
            .map(|a| json_string(a))
            .collect::<Vec<_>>()
            .join(", ")
    );
    splices.push(match launch.args_prop {
        Some(prop) => Splice {
            start: prop.value.range().start,
            end: prop.value.range().end,
            text: args_text,
        },
        None => Splice {
            start: command_range.end,
            end: command_range.end,
            text: format!("{ADDED_ARGS_SEPARATOR}\"args\": {args_text}"),
        },
    });
    splices
}

/// What `set_launch` puts between `command`'s value and the `args` member it adds.
const ADDED_ARGS_SEPARATOR: &str = ", ";

/// Splices that put back the backup's exact text of `command` and `args` (or take out the
/// `args` wrap added).
fn restore(text: &str, current: &Launch, original: &Launch, backup: &str) -> Vec<Splice> {
    let raw =
        |prop: &ObjectProp| backup[prop.value.range().start..prop.value.range().end].to_owned();
    let command_range = current.command_prop.value.range();
    let mut splices = vec![Splice {
        start: command_range.start,
        end: command_range.end,
        text: raw(original.command_prop),
    }];
    let Some(current_args) = current.args_prop else {
        return splices;
    };
    let args_range = current_args.value.range();
    let added_by_wrap = text
        .get(command_range.end..current_args.range.start)
        .is_some_and(|between| between == ADDED_ARGS_SEPARATOR);
    splices.push(match original.args_prop {
        Some(prop) => Splice {
            start: args_range.start,
            end: args_range.end,
            text: raw(prop),
        },
        None if added_by_wrap => Splice {
            start: command_range.end,
            end: args_range.end,
            text: String::new(),
        },
        None => Splice {
            start: args_range.start,
            end: args_range.end,
            text: "[]".to_owned(),
        },
    });
    splices
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(rewrite: &Rewrite) -> Vec<(String, Outcome)> {
        rewrite
            .entries
            .iter()
            .map(|e| (format!("{}/{}", e.scope, e.name), e.outcome.clone()))
            .collect()
    }

    #[test]
    fn entries_it_cannot_wrap_are_left_byte_for_byte() {
        let text = r#"{"mcpServers": {
            "numbers": {"command": "x", "args": ["a", 1]},
            "badenv": {"command": "x", "env": {"NOT-A-NAME": "v"}},
            "nocmd": {"args": []},
            "envfile": {"command": "x", "envFile": "${workspaceFolder}/.env"},
            "sse": {"type": "sse", "url": "http://localhost:1/sse"}
        }}"#;
        let rewrite = wrap(text, "/bin/mcp-guard").unwrap();
        assert_eq!(rewrite.text, text);
        assert_eq!(
            outcomes(&rewrite),
            [
                ("mcpServers/numbers".to_owned(), Outcome::BadArgs),
                (
                    "mcpServers/badenv".to_owned(),
                    Outcome::BadEnvName("NOT-A-NAME".into())
                ),
                ("mcpServers/nocmd".to_owned(), Outcome::NoCommand),
                ("mcpServers/envfile".to_owned(), Outcome::EnvFile),
                ("mcpServers/sse".to_owned(), Outcome::Remote),
            ]
        );
    }

    #[test]
    fn configured_entries_include_project_scopes_and_remotes() {
        let text = r#"{"mcpServers": {"a": {"command": "npx", "args": ["-y", "p"]}},
            "projects": {"/src/app": {"mcpServers": {"b": {"url": "http://x"}}}}}"#;
        let entries = configured(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].launch,
            Ok(("npx".to_owned(), vec!["-y".to_owned(), "p".to_owned()]))
        );
        assert_eq!(
            (entries[1].scope.as_str(), entries[1].name.as_str()),
            ("project /src/app", "b")
        );
        assert_eq!(entries[1].launch, Err(Outcome::Remote));
    }

    #[test]
    fn vscode_settings_json_servers_are_found() {
        let text = "{\n  // user settings\n  \"mcp\": {\"servers\": {\"t\": {\"command\": \"uvx\", \"args\": [\"mcp-server-time\"]}}},\n}";
        let rewrite = wrap(text, "/bin/mcp-guard").unwrap();
        assert_eq!(
            outcomes(&rewrite),
            [(
                "mcp.servers/t".to_owned(),
                Outcome::Wrapped { profile: "time" }
            )]
        );
        assert!(rewrite.text.starts_with("{\n  // user settings\n"));
        let back = unwrap(&rewrite.text, None).unwrap();
        assert_eq!(back.text, text);
    }

    #[test]
    fn an_added_args_member_is_taken_out_again() {
        let text =
            "{\"servers\": {\"s\": {\"command\": \"/opt/s\" /* why */, \"type\": \"stdio\"}}}";
        let wrapped = wrap(text, "mcp-guard").unwrap().text;
        assert_eq!(
            wrapped,
            "{\"servers\": {\"s\": {\"command\": \"mcp-guard\", \"args\": [\"run\", \"--profile\", \"default\", \"--\", \"/opt/s\"] /* why */, \"type\": \"stdio\"}}}"
        );
        assert_eq!(unwrap(&wrapped, Some(text)).unwrap().text, text);
    }
}
