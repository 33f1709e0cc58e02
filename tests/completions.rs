//! The committed completion scripts must match what the binary generates.

use crate::common;

use clap_complete::Shell;

const FILES: [(Shell, &str); 5] = [
    (Shell::Bash, "relayapi.bash"),
    (Shell::Zsh, "_relayapi"),
    (Shell::Fish, "relayapi.fish"),
    (Shell::PowerShell, "_relayapi.ps1"),
    (Shell::Elvish, "relayapi.elv"),
];

#[test]
fn committed_completions_are_fresh() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    let mut stale = Vec::new();
    for (shell, file) in FILES {
        let generated = relayapi::cli::completion_script(shell);
        if std::env::var_os("RELAYAPI_UPDATE_COMPLETIONS").is_some() {
            std::fs::write(dir.join(file), &generated).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        if committed != generated {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "stale completion scripts {stale:?}: run RELAYAPI_UPDATE_COMPLETIONS=1 cargo test --test integration completions"
    );
}

#[test]
fn the_binary_prints_the_same_script() {
    let env = common::TestEnv::sqlite();
    let out = env.cmd().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        common::stdout(&out),
        relayapi::cli::completion_script(Shell::Bash)
    );
}
