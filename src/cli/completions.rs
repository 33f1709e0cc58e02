use clap::Args;
use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct CompletionsCmd {
    /// The shell to print the script for
    #[arg(value_enum)]
    shell: Shell,
}

impl CompletionsCmd {
    pub fn run(&self) -> anyhow::Result<()> {
        print!("{}", script(self.shell));
        Ok(())
    }
}

/// The completion script for one shell, as committed under `completions/`.
pub fn script(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut super::command(), "relayapi", &mut out);
    String::from_utf8(out).expect("completion scripts are UTF-8")
}
