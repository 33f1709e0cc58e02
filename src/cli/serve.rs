use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use clap::Args;
use serde::Serialize;

use super::Context;
use crate::config::{ByteSize, Config, Span};
use crate::secret::SecretString;
use crate::server::{self, AppState, ServeConfig};

/// `serve`'s flags, each also read from its environment variable. Unset ones are left to
/// `relayapi.toml` and then to the defaults ([`Config`]); `--help` shows those defaults.
#[derive(Debug, Args, Serialize)]
pub struct ServeCmd {
    /// Address to listen on
    #[arg(long, env = "RELAYAPI_LISTEN", value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    /// Largest request body accepted, like 32MiB
    #[arg(long, env = "RELAYAPI_MAX_BODY", value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_body: Option<ByteSize>,
    /// Most memory the bodies of all requests in flight may hold together; past it a
    /// request gets 503 relay_busy
    #[arg(long, env = "RELAYAPI_MAX_BODY_MEMORY", value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_body_memory: Option<ByteSize>,
    /// Time allowed to connect to a provider
    #[arg(long, env = "RELAYAPI_CONNECT_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_timeout: Option<Span>,
    /// Time allowed until a provider's response headers
    #[arg(long, env = "RELAYAPI_UPSTREAM_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_timeout: Option<Span>,
    /// Longest pause between two chunks of a response, or between two messages of a
    /// realtime session; no limit on a whole stream
    #[arg(long, env = "RELAYAPI_IDLE_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_timeout: Option<Span>,
    /// Time a client has to send a request's headers, and again its body
    #[arg(long, env = "RELAYAPI_CLIENT_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    client_timeout: Option<Span>,
    /// How long in-flight requests may finish after SIGINT/SIGTERM
    #[arg(long, env = "RELAYAPI_GRACE_PERIOD", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    grace_period: Option<Span>,
    /// Longest life of a realtime client secret minted through the relay; never past the
    /// token's own expiry
    #[arg(long, env = "RELAYAPI_CLIENT_SECRET_LIFETIME", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_lifetime: Option<Span>,
    /// Largest WebSocket message a realtime session relays; a larger one closes the
    /// session with 1009
    #[arg(long, env = "RELAYAPI_MAX_MESSAGE", value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_message: Option<ByteSize>,
    /// Longest a realtime session may stay open; then both sides are closed with 1008
    #[arg(long, env = "RELAYAPI_MAX_SESSION", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_session: Option<Span>,
    /// Proxy whose X-Forwarded-For is believed for --ip policies (repeatable CIDR)
    #[arg(
        long = "trusted-proxy",
        env = "RELAYAPI_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR",
        value_parser = crate::config::parse_ip_range
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Serve Prometheus metrics at /metrics on the main listener
    #[arg(long, env = "RELAYAPI_METRICS")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    metrics: bool,
    /// Serve /metrics on its own address instead (e.g. 127.0.0.1:9090)
    #[arg(long, env = "RELAYAPI_METRICS_LISTEN", value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_listen: Option<SocketAddr>,
    /// Enable the admin API, with the secret read from this environment variable
    #[arg(long, env = "RELAYAPI_ADMIN_TOKEN_ENV", value_name = "VAR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_token_env: Option<String>,
    /// Serve the admin API on its own address (e.g. 127.0.0.1:8081) instead of the main one
    #[arg(long, env = "RELAYAPI_ADMIN_LISTEN", value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_listen: Option<SocketAddr>,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1) with this certificate chain (PEM); read again on
    /// SIGHUP
    #[arg(
        long,
        env = "RELAYAPI_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(
        long,
        env = "RELAYAPI_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_key: Option<std::path::PathBuf>,
    /// Print the settings in effect (defaults, relayapi.toml, environment and flags
    /// merged) as relayapi.toml would hold them, and exit
    #[arg(long)]
    #[serde(skip)]
    print_config: bool,
}

/// Shortest admin secret accepted: guessing it must be hopeless.
const MIN_ADMIN_SECRET: usize = 24;

fn admin_secret(var: &str) -> anyhow::Result<SecretString> {
    let value = std::env::var(var)
        .map_err(|_| anyhow!("--admin-token-env: environment variable {var} is not set"))?;
    let secret = SecretString::new(value.trim());
    if secret.expose().len() < MIN_ADMIN_SECRET {
        anyhow::bail!(
            "--admin-token-env: the admin secret in {var} is shorter than {MIN_ADMIN_SECRET} characters"
        );
    }
    Ok(secret)
}

/// The relay's settings, from the merged configuration.
fn serve_config(config: &Config) -> anyhow::Result<ServeConfig> {
    if config.admin_listen.is_some() && config.admin_token_env.is_none() {
        anyhow::bail!("--admin-listen needs --admin-token-env: the admin API has no secret");
    }
    Ok(ServeConfig {
        max_body: config.max_body.0,
        max_body_memory: config.max_body_memory.0,
        connect_timeout: config.connect_timeout.0,
        upstream_timeout: config.upstream_timeout.0,
        idle_timeout: config.idle_timeout.0,
        client_timeout: config.client_timeout.0,
        grace_period: config.grace_period.0,
        client_secret_lifetime: config.client_secret_lifetime.0,
        max_message: config.max_message.0,
        max_session: config.max_session.0,
        trusted_proxies: config.trusted_proxies.clone(),
        metrics_route: config.metrics_listen.is_none() && config.metrics,
        admin_secret: config
            .admin_token_env
            .as_deref()
            .map(admin_secret)
            .transpose()?
            .map(Arc::new),
        admin_route: config.admin_listen.is_none(),
        tls: match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(server::tls::ReloadableCert::load(cert, key)?),
            (None, None) => None,
            _ => anyhow::bail!("--tls-cert and --tls-key go together: give both or neither"),
        },
        ..ServeConfig::default()
    })
}

impl ServeCmd {
    pub async fn run(&self, ctx: &Context) -> anyhow::Result<()> {
        if self.print_config {
            print!("{}", ctx.config.to_toml());
            return Ok(());
        }
        let (listen, metrics_listen, admin_listen) = (
            ctx.config.listen,
            ctx.config.metrics_listen,
            ctx.config.admin_listen,
        );
        let config = ServeConfig {
            keys_dir: Some(ctx.keyring_dir()),
            ..serve_config(&ctx.config)?
        };
        let admin_secret = config.admin_secret.clone();
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        if let Some(cert) = config.tls.clone() {
            tokio::spawn(reload_on_sighup(cert));
        }
        let ring = ctx.keyring_or_create()?;
        let store = ctx
            .store()
            .await?
            .with_inline_counts()
            .context("cannot open the database for counting")?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let local = listener.local_addr()?;
        let kid = ring.active_kid();
        let state = Arc::new(
            AppState::new(config, store.clone(), ring).context("cannot build the HTTP client")?,
        );
        // A stable line on stderr, whatever the log level: scripts and tests read the port.
        eprintln!("relayapi listening on {scheme}://{local}");
        tracing::info!(kid = %kid, database = store.backend_name(), "serving");
        let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let metrics_task = match metrics_listen {
            Some(addr) => {
                let metrics_listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} for metrics"))?;
                eprintln!(
                    "relayapi metrics on http://{}/metrics",
                    metrics_listener.local_addr()?
                );
                let mut stop = stop_tx.subscribe();
                Some(tokio::spawn(server::run_metrics(
                    state.clone(),
                    metrics_listener,
                    async move {
                        let _ = stop.recv().await;
                    },
                )))
            }
            None => None,
        };
        let admin_task = match (admin_listen, admin_secret) {
            (Some(addr), Some(secret)) => {
                let admin_listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} for the admin API"))?;
                eprintln!(
                    "relayapi admin API on http://{}/admin/v1",
                    admin_listener.local_addr()?
                );
                let mut stop = stop_tx.subscribe();
                Some(tokio::spawn(server::run_admin(
                    state.clone(),
                    secret,
                    admin_listener,
                    async move {
                        let _ = stop.recv().await;
                    },
                )))
            }
            _ => None,
        };
        let stop = stop_tx.clone();
        server::run(state, listener, async move {
            shutdown_signal().await;
            let _ = stop.send(());
        })
        .await;
        for task in [metrics_task, admin_task].into_iter().flatten() {
            let _ = task.await;
        }
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Reads the certificate again on each SIGHUP (an ACME client's deploy hook sends one):
/// new connections get the new one; a reload that fails keeps the old one, and says why.
async fn reload_on_sighup(cert: Arc<server::tls::ReloadableCert>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("no SIGHUP handler: the certificate will not be reloaded");
        return;
    };
    while hangup.recv().await.is_some() {
        match cert.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate reload failed; the old one stays in use")
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stop signal received; finishing in-flight requests");
}
