//! Starting the server: the guard spawns a supervisor (`mcp-guard __supervise`), which confines
//! and execs the server and kills its whole tree when the server or the guard dies.

pub mod supervisor;
