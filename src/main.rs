use clap::Parser;

// mimalloc: fewer cycles per allocation and less fragmentation than the system allocator
// on the relay's many small, short-lived allocations (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    relayapi::cli::main(relayapi::cli::Cli::parse())
}
