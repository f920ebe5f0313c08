//! Rug-pull defence: pin what a server offers (tools, prompts, resources, templates, its
//! instructions) and refuse anything new or changed since (issue 6); by default on first use
//! of each server, with items whose text looks like prompt injection quarantined (issue 17),
//! and tools that shadow another server's quarantined too (issue 19; `fleet`, `fleet_check`, `shadowing`).

pub mod collect;
pub mod diff;
pub mod fleet;
pub mod fleet_check;
pub mod guard;
pub mod identity;
pub mod lockfile;
pub mod record;
pub mod shadowing;
pub mod store;

pub use guard::PinGuard;
pub use lockfile::{Kind, Lockfile};
