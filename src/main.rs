//! The `ascend` binary: see `ascend --help`, README.md and ARCHITECTURE.md.

fn main() -> anyhow::Result<()> {
    ascend_server::cli::main()
}
