use clap::Parser;

fn main() -> std::process::ExitCode {
    relayapi::cli::main(relayapi::cli::Cli::parse())
}
