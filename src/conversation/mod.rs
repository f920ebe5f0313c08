//! The conversation between host and server as the guard sees it, without any I/O: the one
//! [`Ledger`] of requests in flight in each direction (whoever asked: the host, the server or
//! the guard itself), what each request is about ([`Entry`], [`Target`]), and the admission
//! rules every message passes before any firewall stage sees it.
//!
//! The relay (`crate::relay`) owns the one `Ledger` and hands its entries to the firewall, the
//! pin and the audit through [`crate::filter::Context`]; none of them keeps a copy.

pub mod entry;
pub mod ledger;
pub mod target;

pub use entry::{Entry, Origin};
pub use ledger::{Answer, InFlight, Ledger, Refusal};
pub use target::{Target, TargetKind};

/// Who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Host,
    Server,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Host => Side::Server,
            Side::Server => Side::Host,
        }
    }

    pub fn direction(self) -> crate::protocol::Direction {
        match self {
            Side::Host => crate::protocol::Direction::HostToServer,
            Side::Server => crate::protocol::Direction::ServerToHost,
        }
    }
}
