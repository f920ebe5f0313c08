use std::process::ExitCode;

fn main() -> ExitCode {
    mcp_guard::cli::main()
}
