//! One example per key, shown in the help of a wrong-type error (and kept in step with
//! `policies/README.md`).

const EXAMPLES: &[(&str, &str)] = &[
    ("version", "version = 1"),
    ("description", "description = \"What this policy is for\""),
    ("extends", "extends = [\"node\", \"./base.toml\"]"),
    ("enforce", "enforce = \"required\"   # or \"best-effort\""),
    ("require", "require = [\"landlock\", \"seccomp\"]"),
    (
        "launch.allow",
        "allow = [\"npx\", \"node\", \"/usr/bin/python3\"]",
    ),
    ("launch.deny", "deny = [\"curl\", \"wget\"]"),
    (
        "filesystem.read",
        "read = [\"${CWD}\", \"${HOME}/.config/myserver\"]",
    ),
    ("filesystem.write", "write = [\"${CWD}/out\"]"),
    ("filesystem.exec", "exec = [\"/usr/bin/git\"]"),
    (
        "filesystem.deny",
        "deny = [\"${HOME}/.ssh\", \"${HOME}/.aws\"]",
    ),
    (
        "filesystem.create",
        "create = [\"${XDG_DATA_HOME}/mcp-guard/memory\"]",
    ),
    (
        "filesystem.protect",
        "protect = [\".terraformrc\", \"tools/hooks\"]",
    ),
    (
        "filesystem.arg_paths",
        "arg_paths = \"write\"   # or \"read\", \"none\"",
    ),
    (
        "network.mode",
        "mode = \"hosts\"   # or \"off\", \"ports\" (weak), \"open\"",
    ),
    (
        "network.allow",
        "allow = [\"api.github.com\", \"*.githubusercontent.com:443\", \"10.20.0.0/16:5432\"]",
    ),
    ("network.udp", "udp = [\"10.0.0.53:53\"]"),
    ("network.unix", "unix = [\"/run/user/1000/my-agent.sock\"]"),
    (
        "network.isolation",
        "isolation = \"broker\"   # or \"namespace\" (default: the strongest available)",
    ),
    ("network.connect", "connect = [443]"),
    ("network.bind", "bind = [8080]"),
    ("limits.memory", "memory = \"512MiB\""),
    ("limits.pids", "pids = 64"),
    ("limits.cpus", "cpus = 1.5"),
    ("limits.cpu_time", "cpu_time = \"10m\""),
    ("limits.wall_clock", "wall_clock = \"8h\""),
    ("limits.file_size", "file_size = \"100MiB\""),
    ("limits.open_files", "open_files = 256"),
    ("limits.request_timeout", "request_timeout = \"60s\""),
    ("limits.max_message_bytes", "max_message_bytes = \"16MiB\""),
    ("env.pass", "pass = [\"LANG\", \"TZ\"]"),
    ("env.set", "[env.set]\nNODE_ENV = \"production\""),
    ("syscalls.deny", "deny = [\"ptrace\", \"personality\"]"),
    ("syscalls.allow", "allow = [\"io_uring_setup\"]"),
    ("tools.allow", "allow = [\"read_*\", \"list_directory\"]"),
    ("tools.deny", "deny = [\"delete_*\"]"),
    ("tools.rate_limit", "rate_limit = \"10/s\""),
    (
        "tools.rate_limits",
        "[tools.rate_limits]\nwrite_file = \"30/min\"",
    ),
    ("tools.confirm_timeout", "confirm_timeout = \"2m\""),
    ("prompts.allow", "allow = [\"summarize\"]"),
    ("prompts.deny", "deny = [\"*debug*\"]"),
    ("prompts.rate_limit", "rate_limit = \"10/s\""),
    (
        "prompts.rate_limits",
        "[prompts.rate_limits]\nsummarize = \"10/min\"",
    ),
    (
        "resources.allow",
        "allow = [\"file:///srv/docs/**\", \"memory://*\"]",
    ),
    ("resources.deny", "deny = [\"file:///**/.env\"]"),
    ("resources.rate_limit", "rate_limit = \"20/s\""),
    ("resources.file_roots", "file_roots = [\"${CWD}\"]"),
    (
        "server_requests.sampling",
        "sampling = \"deny\"   # or \"allow\"",
    ),
    (
        "server_requests.elicitation",
        "elicitation = \"allow\"   # or \"deny\"",
    ),
    ("server_requests.roots", "roots = \"allow\"   # or \"deny\""),
    ("redaction.enabled", "enabled = true"),
    ("redaction.builtin", "builtin = true"),
    (
        "redaction.patterns",
        "[redaction.patterns]\ninternal_token = 'itk_[A-Za-z0-9]{32}'",
    ),
    ("redaction.allow", "allow = ['sk-test-[0-9a-f]+']"),
    ("errors.sanitize", "sanitize = true"),
    (
        "sanitize.results",
        "results = \"strip\"   # or \"flag\", \"off\"",
    ),
    ("validation.strict", "strict = true"),
    ("validation.require_listing", "require_listing = false"),
    (
        "validation.tolerate",
        "tolerate = [\"null-optional-fields\", \"content-without-type\", \"tool-without-input-schema\"]",
    ),
    ("audit.enabled", "enabled = true"),
    (
        "audit.path",
        "path = \"${XDG_STATE_HOME}/mcp-guard/audit.jsonl\"",
    ),
    ("audit.required", "required = true"),
    (
        "audit.on_suspicious",
        "on_suspicious = \"kill\"   # or \"log\"",
    ),
    ("audit.suspicious_refusals", "suspicious_refusals = 20"),
    ("audit.suspicious_window", "suspicious_window = \"1m\""),
    (
        "audit.redact_keys",
        "redact_keys = [\"password\", \"token\"]",
    ),
    ("audit.max_value_bytes", "max_value_bytes = \"4KiB\""),
    ("audit.max_size", "max_size = \"32MiB\""),
    ("audit.keep", "keep = 3"),
    ("audit.excerpts", "excerpts = \"512B\"   # 0: metadata only"),
    ("audit.forwards", "forwards = \"every\"   # or \"count\", \"auto\""),
    (
        "audit.otlp_endpoint",
        "otlp_endpoint = \"http://collector:4318\"   # \"\" ignores OTEL_EXPORTER_OTLP_ENDPOINT",
    ),
    ("pin.mode", "mode = \"tofu\"   # or \"file\" (with --pin FILE), \"off\""),
    (
        "pin.injection",
        "injection = \"quarantine\"   # or \"flag\"",
    ),
];

/// The example for `section.key` (`tools.arguments.*.*` share one).
pub fn example_for(path: &str) -> Option<&'static str> {
    if path.starts_with("tools.arguments") || path.starts_with("prompts.arguments") {
        return Some(
            "[tools.arguments.write_file]\npath = { under = [\"${CWD}\"], max_length = 4096 }",
        );
    }
    // Consent is for tools only; `[prompts]` shares the keys, and is refused them.
    if path.ends_with(".confirm") {
        return Some("[tools.delete_file]\nconfirm = true");
    }
    if path == "prompts.confirm_timeout" {
        return Some("[tools]\nconfirm_timeout = \"2m\"");
    }
    let find = |key: &str| EXAMPLES.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    // A key inside a map section (`[tools.rate_limits]`) takes the section's example.
    find(path).or_else(|| path.rsplit_once('.').and_then(|(parent, _)| find(parent)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECTIONS: &[&str] = &[
        "",
        "launch",
        "filesystem",
        "network",
        "limits",
        "env",
        "syscalls",
        "tools",
        "prompts",
        "resources",
        "server_requests",
        "redaction",
        "errors",
        "sanitize",
        "validation",
        "audit",
        "pin",
    ];

    /// The keys a section accepts, as serde lists them for an unknown one.
    fn keys_of(section: &str) -> Vec<String> {
        let text = if section.is_empty() {
            "zzz = 1".to_owned()
        } else {
            format!("[{section}]\nzzz = 1")
        };
        let err = toml::from_str::<crate::policy::Policy>(&text).unwrap_err();
        let msg = err.message().to_owned();
        let expected = msg
            .split_once("expected")
            .map(|(_, r)| r.to_owned())
            .unwrap_or_default();
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn examples_cover_every_key_and_readme_documents_it() {
        let readme = include_str!("../../policies/README.md");
        for section in SECTIONS {
            let keys = keys_of(section);
            assert!(!keys.is_empty(), "no keys found for [{section}]");
            for key in keys {
                let path = if section.is_empty() {
                    key.clone()
                } else {
                    format!("{section}.{key}")
                };
                if SECTIONS.contains(&path.as_str()) {
                    continue;
                }
                assert!(example_for(&path).is_some(), "no example for `{path}`");
                assert!(
                    readme.contains(&format!("`{key}`")),
                    "policies/README.md does not document `{path}`"
                );
            }
        }
    }
}
