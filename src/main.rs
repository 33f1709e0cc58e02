fn main() -> std::process::ExitCode {
    relayapi::cli::main(relayapi::cli::parse())
}
