use std::process::ExitCode;

/// Every relayed message allocates (ids, parsed bodies, replies): mimalloc spends fewer
/// instructions per allocation than glibc's malloc and keeps the guard's memory flat.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    mcp_guard::cli::main()
}
