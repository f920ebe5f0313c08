//! The supervisor process (internal `__supervise` mode).

pub fn main() -> u8 {
    0
}
