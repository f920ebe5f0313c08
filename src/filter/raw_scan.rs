//! One pass over a message's raw text for every literal the stages look for in it: the
//! redaction triggers and the members `"_meta"` (version stage), `\u0000` (NUL refusal) and
//! `"inputRequests"` (server requests). Each was its own full pass (a Teddy search and up to
//! three memmem searches per message); one Aho-Corasick search with its Teddy prefilter costs
//! about as much as the first alone. Built only when the built-in redaction is on: without the
//! triggers, the memmem searches a message needs are cheaper than one multi-literal search.

use aho_corasick::{AhoCorasick, MatchKind};

use crate::protocol::needle::Needle;

/// What the raw text contains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    pub meta: bool,
    pub nul: bool,
    pub input_requests: bool,
    /// One of the redaction triggers.
    pub trigger: bool,
}

/// The members looked for, in the order of [`Facts`]' first three flags.
const MEMBERS: [&str; 3] = ["\"_meta\"", "\\u0000", "\"inputRequests\""];

/// A member a stage asks about ([`super::inspection::Inspection::mentions`]).
#[derive(Debug, Clone, Copy)]
pub enum Member {
    /// `"_meta"` (the version stage).
    Meta,
    /// `\u0000`, the only way JSON text holds a NUL (the NUL refusal).
    Nul,
    /// `"inputRequests"` (server requests, 2026-07-28).
    InputRequests,
}

impl Member {
    /// The member searched alone, when the firewall made no [`RawScan`].
    pub fn needle(self) -> &'static Needle {
        static NEEDLES: [Needle; 3] = [
            Needle::new(MEMBERS[0].as_bytes()),
            Needle::new(MEMBERS[1].as_bytes()),
            Needle::new(MEMBERS[2].as_bytes()),
        ];
        &NEEDLES[self as usize]
    }
}

impl Facts {
    pub fn has(&self, member: Member) -> bool {
        match member {
            Member::Meta => self.meta,
            Member::Nul => self.nul,
            Member::InputRequests => self.input_requests,
        }
    }
}

#[derive(Debug)]
pub struct RawScan {
    automaton: AhoCorasick,
    /// Per member: whether it contains a trigger (`\u0000` holds `\u`), which its match then
    /// stands for.
    holds_trigger: [bool; 3],
}

impl RawScan {
    /// `None` when the automaton cannot be built (the stages then search one by one).
    pub fn new(triggers: &[&str]) -> Option<RawScan> {
        // Leftmost-longest: only a leftmost kind runs the SIMD prefilter, and longest makes
        // `\u0000` win over the trigger `\u` at the same place. Matches do not overlap, yet
        // none is lost: no trigger holds a `"`, and only `\u` a `\`, so no trigger match can
        // cover the start of a member (a unit test tries every overlap); two members could
        // only overlap on a `"` that both closes and opens a string, which is not JSON.
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(MEMBERS.iter().chain(triggers))
            .ok()?;
        Some(RawScan {
            automaton,
            holds_trigger: MEMBERS.map(|m| triggers.iter().any(|t| m.contains(t))),
        })
    }

    pub fn scan(&self, raw: &str) -> Facts {
        let mut facts = Facts::default();
        for found in self.automaton.find_iter(raw) {
            let i = found.pattern().as_usize();
            match i {
                0 => facts.meta = true,
                1 => facts.nul = true,
                2 => facts.input_requests = true,
                _ => facts.trigger = true,
            }
            if i < MEMBERS.len() && self.holds_trigger[i] {
                facts.trigger = true;
            }
            if facts.meta && facts.nul && facts.input_requests && facts.trigger {
                break;
            }
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::redact::TRIGGERS;

    fn naive(raw: &str) -> Facts {
        Facts {
            meta: raw.contains(MEMBERS[0]),
            nul: raw.contains(MEMBERS[1]),
            input_requests: raw.contains(MEMBERS[2]),
            trigger: TRIGGERS.iter().any(|t| raw.contains(t)),
        }
    }

    #[test]
    fn raw_scan_finds_what_separate_searches_find() {
        let scan = RawScan::new(TRIGGERS).expect("builds");
        let mut texts = vec![
            String::new(),
            r#"{"name":"echo","arguments":{"text":"plain"}}"#.to_owned(),
            r#"{"_meta":{},"inputRequests":{},"a":"\u0000 sk-x"}"#.to_owned(),
            r#"{"a":"\\u0000"}"#.to_owned(),
        ];
        // Every way a member and a trigger (or two triggers) can overlap or touch. (Two members
        // cannot in JSON text: they would share a `"` that both closes and opens a string.)
        let all: Vec<&str> = MEMBERS.iter().chain(TRIGGERS).copied().collect();
        for a in &all {
            for b in &all {
                if MEMBERS.contains(a) && MEMBERS.contains(b) {
                    continue;
                }
                for k in 0..=a.len().min(b.len()) {
                    if a.ends_with(&b[..k]) {
                        texts.push(format!("x{a}{}y", &b[k..]));
                    }
                }
                if a.contains(b) {
                    texts.push(format!("<{a}>"));
                }
            }
        }
        for text in &texts {
            assert_eq!(scan.scan(text), naive(text), "{text}");
        }
    }
}
