use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Args;

use super::Context;
use crate::config::parse_size;
use crate::secret::SecretString;
use crate::server::{self, AppState, ServeConfig};
use crate::service::parse_duration;

#[derive(Debug, Args)]
pub struct ServeCmd {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "RELAYAPI_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Largest request body accepted, like 32MiB [default: 32MiB]
    #[arg(long, env = "RELAYAPI_MAX_BODY", value_name = "SIZE")]
    max_body: Option<String>,
    /// Most memory the bodies of all requests in flight may hold together; past it a
    /// request gets 503 relay_busy [default: 256MiB]
    #[arg(long, env = "RELAYAPI_MAX_BODY_MEMORY", value_name = "SIZE")]
    max_body_memory: Option<String>,
    /// Time allowed to connect to a provider [default: 10s]
    #[arg(long, env = "RELAYAPI_CONNECT_TIMEOUT", value_name = "DURATION")]
    connect_timeout: Option<String>,
    /// Time allowed until a provider's response headers [default: 300s]
    #[arg(long, env = "RELAYAPI_UPSTREAM_TIMEOUT", value_name = "DURATION")]
    upstream_timeout: Option<String>,
    /// Longest pause between two chunks of a response; no limit on a whole stream [default: 120s]
    #[arg(long, env = "RELAYAPI_IDLE_TIMEOUT", value_name = "DURATION")]
    idle_timeout: Option<String>,
    /// Time a client has to send a request's headers, and again its body [default: 30s]
    #[arg(long, env = "RELAYAPI_CLIENT_TIMEOUT", value_name = "DURATION")]
    client_timeout: Option<String>,
    /// How long in-flight requests may finish after SIGINT/SIGTERM [default: 30s]
    #[arg(long, env = "RELAYAPI_GRACE_PERIOD", value_name = "DURATION")]
    grace_period: Option<String>,
    /// Proxy whose X-Forwarded-For is believed for --ip policies (repeatable CIDR)
    #[arg(
        long = "trusted-proxy",
        env = "RELAYAPI_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    trusted_proxies: Vec<String>,
    /// Serve Prometheus metrics at /metrics on the main listener
    #[arg(long, env = "RELAYAPI_METRICS")]
    metrics: bool,
    /// Serve /metrics on its own address instead (e.g. 127.0.0.1:9090)
    #[arg(long, env = "RELAYAPI_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Enable the admin API, with the secret read from this environment variable
    #[arg(long, env = "RELAYAPI_ADMIN_TOKEN_ENV", value_name = "VAR")]
    admin_token_env: Option<String>,
    /// Serve the admin API on its own address (e.g. 127.0.0.1:8081) instead of the main one
    #[arg(
        long,
        env = "RELAYAPI_ADMIN_LISTEN",
        value_name = "ADDR",
        requires = "admin_token_env"
    )]
    admin_listen: Option<String>,
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

fn parse_addr(flag: &str, value: &str) -> anyhow::Result<SocketAddr> {
    value
        .parse()
        .map_err(|_| anyhow!("--{flag}: {value:?} is not an address like 127.0.0.1:8080"))
}

struct Listeners {
    main: SocketAddr,
    metrics: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    config: ServeConfig,
}

fn duration(
    name: &str,
    flag: &Option<String>,
    file: &Option<String>,
    default: Duration,
) -> anyhow::Result<Duration> {
    match flag.as_ref().or(file.as_ref()) {
        None => Ok(default),
        Some(s) => parse_duration(s)
            .map_err(|m| anyhow!("--{name}: {m}"))?
            .to_std()
            .map_err(|_| anyhow!("--{name}: out of range")),
    }
}

impl ServeCmd {
    fn config(&self, ctx: &Context) -> anyhow::Result<Listeners> {
        let file = &ctx.file;
        let defaults = ServeConfig::default();
        let listen = self
            .listen
            .clone()
            .or_else(|| file.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".to_string());
        let listen = parse_addr("listen", &listen)?;
        let metrics_listen = self
            .metrics_listen
            .clone()
            .or_else(|| file.metrics_listen.clone())
            .map(|a| parse_addr("metrics-listen", &a))
            .transpose()?;
        let proxies = if self.trusted_proxies.is_empty() {
            file.trusted_proxies.clone().unwrap_or_default()
        } else {
            self.trusted_proxies.clone()
        };
        let trusted_proxies = proxies
            .iter()
            .map(|p| crate::policy::parse_ip_range(p).map_err(|e| anyhow!("--trusted-proxy: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let max_body = match self.max_body.as_ref().or(file.max_body.as_ref()) {
            None => defaults.max_body,
            Some(s) => parse_size(s).map_err(|m| anyhow!("--max-body: {m}"))?,
        };
        let max_body_memory = match self
            .max_body_memory
            .as_ref()
            .or(file.max_body_memory.as_ref())
        {
            None => defaults.max_body_memory,
            Some(s) => parse_size(s).map_err(|m| anyhow!("--max-body-memory: {m}"))?,
        };
        if max_body_memory < max_body {
            return Err(anyhow!(
                "--max-body-memory ({max_body_memory} bytes) is smaller than --max-body ({max_body} bytes): no body that large could ever be read"
            ));
        }
        let config = ServeConfig {
            max_body,
            max_body_memory,
            connect_timeout: duration(
                "connect-timeout",
                &self.connect_timeout,
                &file.connect_timeout,
                defaults.connect_timeout,
            )?,
            upstream_timeout: duration(
                "upstream-timeout",
                &self.upstream_timeout,
                &file.upstream_timeout,
                defaults.upstream_timeout,
            )?,
            idle_timeout: duration(
                "idle-timeout",
                &self.idle_timeout,
                &file.idle_timeout,
                defaults.idle_timeout,
            )?,
            client_timeout: duration(
                "client-timeout",
                &self.client_timeout,
                &file.client_timeout,
                defaults.client_timeout,
            )?,
            grace_period: duration(
                "grace-period",
                &self.grace_period,
                &file.grace_period,
                defaults.grace_period,
            )?,
            trusted_proxies,
            metrics_route: metrics_listen.is_none() && (self.metrics || file.metrics == Some(true)),
            usage_queue: defaults.usage_queue,
            admin_secret: self
                .admin_token_env
                .as_deref()
                .map(admin_secret)
                .transpose()?
                .map(Arc::new),
            admin_route: self.admin_listen.is_none(),
        };
        let admin_listen = self
            .admin_listen
            .as_deref()
            .map(|a| parse_addr("admin-listen", a))
            .transpose()?;
        Ok(Listeners {
            main: listen,
            metrics: metrics_listen,
            admin: admin_listen,
            config,
        })
    }

    pub async fn run(&self, ctx: &Context) -> anyhow::Result<()> {
        let Listeners {
            main: listen,
            metrics: metrics_listen,
            admin: admin_listen,
            config,
        } = self.config(ctx)?;
        let admin_secret = config.admin_secret.clone();
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
        eprintln!("relayapi listening on http://{local}");
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

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stop signal received; finishing in-flight requests");
}
