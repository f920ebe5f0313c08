//! What a request acts on, by method: the one method → target table.

/// The kind of thing a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Tool,
    Prompt,
    Uri,
}

/// Which member of `params` names what a request acts on, by method.
pub fn target_kind(method: &str) -> Option<TargetKind> {
    match method {
        "tools/call" => Some(TargetKind::Tool),
        "prompts/get" => Some(TargetKind::Prompt),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some(TargetKind::Uri),
        _ => None,
    }
}

/// The tool, prompt or resource a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: TargetKind,
    /// Inline up to 24 bytes (most tool and prompt names): no allocation per request.
    pub value: compact_str::CompactString,
}

impl Target {
    /// The tool a `tools/call` names.
    pub fn tool(&self) -> Option<&str> {
        (self.kind == TargetKind::Tool).then_some(&*self.value)
    }
}
