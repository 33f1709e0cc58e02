//! The command line: clap types, one file per command group.

mod completions;
mod issuer;
pub use completions::script as completion_script;
mod keygen;
mod migrate;
mod output;
mod providers;
mod relays;
mod serve;
mod token;
mod usage;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueHint};

use crate::config::{CliLayer, Config, Settings, redact_url};
use crate::crypto::KeyRing;
use crate::store::{Migrations, Store};

#[derive(Debug, Parser)]
#[command(
    name = "relayapi",
    version,
    about = "Let browser frontends call AI APIs without ever seeing the real API key",
    long_about = "Let browser frontends call AI APIs without ever seeing the real API key.\n\n\
        An admin issues a token that seals the real API key with the server's public key; the \
        frontend uses the token where it would put the API key and this relay's URL as its \
        SDK's base URL. The relay opens the token, checks its limits, counts the call and \
        forwards it with the real key."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The settings every command takes; serialized (unset ones left out) as a layer of the
/// configuration.
#[derive(Debug, Args, serde::Serialize)]
pub struct GlobalArgs {
    /// Folder for the key ring and the default SQLite database [default: the platform's
    /// data directory for relayapi]
    #[arg(long, global = true, env = "RELAYAPI_DATA_DIR", value_hint = ValueHint::DirPath)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the
    /// data dir]
    #[arg(long, global = true, env = "RELAYAPI_DATABASE_URL", hide_env_values = true, value_hint = ValueHint::Url)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// PostgreSQL: the most database connections this process keeps open [default: 32]
    #[arg(long, global = true, env = "RELAYAPI_DATABASE_CONNECTIONS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_connections: Option<u32>,
    /// TOML file with the same settings [default: ./relayapi.toml when present]
    #[arg(long, global = true, env = "RELAYAPI_CONFIG", value_hint = ValueHint::FilePath)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the server's P-256 key pair (or rotate it, or list the key ring)
    Keygen(keygen::KeygenCmd),
    /// Issue, list, show and revoke tokens
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Run the relay: open tokens, check them, count calls, forward to the provider
    Serve(serve::ServeCmd),
    /// Register, list and revoke issuers (backends that mint signed tokens offline)
    #[command(subcommand)]
    Issuer(issuer::IssuerCmd),
    /// Report usage per token, model or day
    Usage(usage::UsageCmd),
    /// List the relays sharing this PostgreSQL database, from their heartbeats
    Relays(relays::RelaysCmd),
    /// Apply pending database migrations, or list their status
    Migrate(migrate::MigrateCmd),
    /// List the providers the relay knows, with base URL and auth style
    Providers(providers::ProvidersCmd),
    /// Print a shell completion script
    Completions(completions::CompletionsCmd),
}

/// The command line as `--help` shows it: each setting's default from [`Config::default`].
pub fn command() -> clap::Command {
    let defaults = Config::default_texts();
    <Cli as clap::CommandFactory>::command().mut_subcommand("serve", |mut serve| {
        for (key, text) in &defaults {
            if serve.get_arguments().any(|a| a.get_id() == key.as_str()) {
                serve = serve.mut_arg(key.as_str(), |arg| {
                    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                    arg.help(format!("{help} [default: {text}]"))
                });
            }
        }
        serve
    })
}

/// Parses the process's arguments (exits with clap's message when they are wrong).
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit())
}

/// Runs the CLI and maps any error to one line on stderr and exit code 1.
pub fn main(cli: Cli) -> ExitCode {
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RELAYAPI_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // tungstenite traces a client handshake's whole request, the provider's key with it:
    // that one place is held to debug whatever the level asked for.
    let filter = filter.add_directive(
        "tungstenite::handshake::client=debug"
            .parse()
            .expect("a valid directive"),
    );
    // Colours only on a terminal: a log file or a collector gets plain text.
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Completions(cmd) = &cli.command {
        return cmd.run();
    }
    if let Command::Providers(cmd) = &cli.command {
        return cmd.run();
    }
    let mut layers: Vec<&dyn CliLayer> = vec![&cli.global];
    if let Command::Serve(cmd) = &cli.command {
        layers.push(cmd);
    }
    let ctx = Context::new(cli.global.config.as_deref(), &layers)?;
    match cli.command {
        Command::Keygen(cmd) => cmd.run(&ctx).await,
        Command::Token(cmd) => cmd.run(&ctx).await,
        Command::Migrate(cmd) => cmd.run(&ctx).await,
        Command::Serve(cmd) => cmd.run(&ctx).await,
        Command::Usage(cmd) => cmd.run(&ctx).await,
        Command::Issuer(cmd) => cmd.run(&ctx).await,
        Command::Relays(cmd) => cmd.run(&ctx).await,
        Command::Providers(_) | Command::Completions(_) => unreachable!("handled above"),
    }
}

/// What a command needs from the settings.
pub struct Context {
    pub settings: Settings,
    pub config: Config,
}

impl Context {
    fn new(file: Option<&std::path::Path>, layers: &[&dyn CliLayer]) -> anyhow::Result<Self> {
        let config = Config::load(file, layers)?;
        let settings = Settings::resolve(&config)?;
        Ok(Self { settings, config })
    }

    fn ensure_data_dir(&self) -> anyhow::Result<()> {
        let dir = &self.settings.data_dir;
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {}", dir.display()))?;
        }
        Ok(())
    }

    /// Opens the database, applying pending migrations unless told otherwise.
    async fn store_with(&self, migrations: Migrations) -> anyhow::Result<Store> {
        if self.settings.uses_sqlite() {
            self.ensure_data_dir()?;
        }
        Store::connect_with(
            &self.settings.database_url,
            migrations,
            self.settings.database_connections,
        )
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                redact_url(&self.settings.database_url)
            )
        })
    }

    async fn store(&self) -> anyhow::Result<Store> {
        self.store_with(Migrations::Apply).await
    }

    fn keyring_dir(&self) -> PathBuf {
        KeyRing::dir_in(&self.settings.data_dir)
    }

    /// The key ring, creating the first key when there is none (and saying so on stderr).
    fn keyring_or_create(&self) -> anyhow::Result<KeyRing> {
        self.ensure_data_dir()?;
        let (ring, created) = KeyRing::load_or_create(&self.keyring_dir())?;
        if created {
            eprintln!(
                "created the server key {} in {}",
                ring.active_kid(),
                self.keyring_dir().display()
            );
        }
        Ok(ring)
    }
}

pub(crate) fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// An error and its causes on one line, each cause once: layers that already include their
/// source's text in their own message (sqlx, sea-orm) would otherwise repeat it.
fn error_chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod error_chain_tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("the database is unavailable: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::other("connection refused");
        let e = anyhow::Error::new(Outer(io)).context("cannot open the database");
        assert_eq!(
            error_chain(&e),
            "cannot open the database: the database is unavailable: connection refused"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&plain), "outer: inner");
    }
}
