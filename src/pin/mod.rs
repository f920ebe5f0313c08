//! Rug-pull defence: pin what a server offers (tools, prompts, resources, templates, its
//! instructions) and refuse anything new or changed since (issue 6).

pub mod collect;
pub mod diff;
pub mod guard;
pub mod lockfile;

pub use guard::PinGuard;
pub use lockfile::{Kind, Lockfile};
