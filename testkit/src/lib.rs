//! Test-only servers for mcp-guard's integration tests and benchmarks; never shipped.
//! The binaries live in `src/bin/`; the hostile server's attacks in [`attacks`].

pub mod attacks;
