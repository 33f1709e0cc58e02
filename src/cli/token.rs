use std::io::Read;

use anyhow::{Context as _, bail};
use chrono::Utc;
use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{
    TokenView, calls, column, list_or, print_json, render, table, time, tokens_used,
};
use super::{Context, stdin_is_terminal};
use crate::providers;
use crate::secret::SecretString;
use crate::service::{self, IssueRequest, IssuedToken, LimitsChange};
use crate::store::TokenRecord;

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Issue a token that seals a provider API key
    Issue(Box<IssueArgs>),
    /// List tokens (active and exhausted; --all adds revoked and expired)
    List(ListArgs),
    /// Show one token
    Show(ShowArgs),
    /// Change a token's limits and policies (seen by running relays within a second)
    Update(Box<UpdateArgs>),
    /// Revoke a token: the relay refuses it from then on
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Provider (see `relayapi providers`); `custom` for any other OpenAI-compatible server
    #[arg(long, default_value = "openai")]
    provider: String,
    /// Base URL replacing the provider's (self-hosted or local servers; required for azure
    /// and custom)
    #[arg(long, value_name = "URL", value_hint = clap::ValueHint::Url)]
    upstream: Option<String>,
    /// How a custom provider takes the key: bearer, x-api-key, header:NAME or query:NAME
    #[arg(long, value_name = "STYLE")]
    auth: Option<String>,
    /// A label for people
    #[arg(long, value_name = "LABEL")]
    name: Option<String>,
    /// Read the provider API key from this environment variable
    #[arg(long, value_name = "VAR", conflicts_with = "api_key_stdin")]
    api_key_env: Option<String>,
    /// Read the provider API key from standard input
    #[arg(long)]
    api_key_stdin: bool,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print one JSON object
    #[arg(long, conflicts_with = "quiet")]
    json: bool,
    /// Print the token alone
    #[arg(long, short)]
    quiet: bool,
}

/// Limits and policies, shared by `issue` and `update`.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Most calls the token may make [default: unlimited]
    #[arg(long, value_name = "N")]
    max_calls: Option<u64>,
    /// Budget of total (prompt + completion) tokens [default: unlimited]
    #[arg(long, value_name = "N")]
    max_total_tokens: Option<u64>,
    /// Lifetime from now, like 30m, 24h, 7d [default: never expires]
    #[arg(long, value_name = "DURATION", conflicts_with = "expires_at")]
    expires_in: Option<String>,
    /// Expiry time, RFC 3339 (2026-12-31T23:59:00Z)
    #[arg(long, value_name = "TIME")]
    expires_at: Option<String>,
    /// Allowed model (repeatable; a trailing * matches a prefix)
    #[arg(long = "model", value_name = "MODEL")]
    models: Vec<String>,
    /// Allowed browser origin, exactly (repeatable)
    #[arg(long = "origin", value_name = "URL")]
    origins: Vec<String>,
    /// Allowed client network, CIDR or address (repeatable)
    #[arg(long = "ip", value_name = "CIDR")]
    ips: Vec<String>,
    /// Allowed request path (repeatable; a trailing * matches a prefix) [default: the
    /// provider's inference endpoints]
    #[arg(long = "endpoint", value_name = "PATH")]
    endpoints: Vec<String>,
    /// Requests per minute (per relay process)
    #[arg(long, value_name = "N")]
    rpm: Option<u32>,
    /// Requests in flight at once, streams included (per relay process)
    #[arg(long, value_name = "N")]
    concurrency: Option<u32>,
    /// Cap on the output tokens a request may ask for (set when absent, lowered when higher)
    #[arg(long, value_name = "N")]
    max_output_tokens: Option<u32>,
    /// Longest a realtime session may stay open, like 10m [default: serve --max-session]
    #[arg(long, value_name = "DURATION")]
    max_session: Option<String>,
}

/// The limits given on the command line: each flag given sets its limit.
impl From<&LimitArgs> for LimitsChange {
    fn from(l: &LimitArgs) -> Self {
        let list = |items: &Vec<String>| (!items.is_empty()).then(|| Some(items.clone()));
        LimitsChange {
            max_calls: l.max_calls.map(Some),
            max_total_tokens: l.max_total_tokens.map(Some),
            expires_in: l.expires_in.clone().map(Some),
            expires_at: l.expires_at.clone().map(Some),
            models: list(&l.models),
            origins: list(&l.origins),
            ips: list(&l.ips),
            endpoints: list(&l.endpoints),
            rpm: l.rpm.map(Some),
            concurrency: l.concurrency.map(Some),
            max_output_tokens: l.max_output_tokens.map(Some),
            max_session: l.max_session.clone().map(Some),
        }
    }
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Token id, or any unique prefix of it
    id: String,
    /// A new label
    #[arg(long, value_name = "LABEL")]
    name: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    clear: ClearArgs,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `token update`'s way to remove a limit: the command line's `null`.
#[derive(Debug, Args)]
pub struct ClearArgs {
    /// Remove the call limit
    #[arg(long, conflicts_with = "max_calls")]
    clear_max_calls: bool,
    /// Remove the token budget
    #[arg(long, conflicts_with = "max_total_tokens")]
    clear_max_total_tokens: bool,
    /// Make the token never expire
    #[arg(long, conflicts_with_all = ["expires_in", "expires_at"])]
    clear_expiry: bool,
    /// Allow any model
    #[arg(long, conflicts_with = "models")]
    clear_models: bool,
    /// Allow any origin
    #[arg(long, conflicts_with = "origins")]
    clear_origins: bool,
    /// Allow any client address
    #[arg(long, conflicts_with = "ips")]
    clear_ips: bool,
    /// Back to the provider's default endpoints
    #[arg(long, conflicts_with = "endpoints")]
    clear_endpoints: bool,
    /// Remove the rate limit
    #[arg(long, conflicts_with = "rpm")]
    clear_rpm: bool,
    /// Remove the concurrency limit
    #[arg(long, conflicts_with = "concurrency")]
    clear_concurrency: bool,
    /// Remove the output-token cap
    #[arg(long, conflicts_with = "max_output_tokens")]
    clear_max_output_tokens: bool,
    /// Back to the relay's session length limit
    #[arg(long, conflicts_with = "max_session")]
    clear_max_session: bool,
}

impl ClearArgs {
    /// Marks each limit whose `--clear-*` flag was given as removed.
    fn apply(&self, change: &mut LimitsChange) {
        fn clear<T>(flag: bool, field: &mut Option<Option<T>>) {
            if flag {
                *field = Some(None);
            }
        }
        clear(self.clear_max_calls, &mut change.max_calls);
        clear(self.clear_max_total_tokens, &mut change.max_total_tokens);
        clear(self.clear_expiry, &mut change.expires_at);
        clear(self.clear_models, &mut change.models);
        clear(self.clear_origins, &mut change.origins);
        clear(self.clear_ips, &mut change.ips);
        clear(self.clear_endpoints, &mut change.endpoints);
        clear(self.clear_rpm, &mut change.rpm);
        clear(self.clear_concurrency, &mut change.concurrency);
        clear(self.clear_max_output_tokens, &mut change.max_output_tokens);
        clear(self.clear_max_session, &mut change.max_session);
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include revoked and expired tokens
    #[arg(long)]
    all: bool,
    /// Print a JSON array
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Token id, or any unique prefix of it
    id: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Token id, or any unique prefix of it
    id: String,
    /// Do not ask for confirmation
    #[arg(long, short)]
    yes: bool,
    /// For a signed token never used yet (so not in the store): the issuer that minted it;
    /// the full id is then required
    #[arg(long, value_name = "NAME")]
    issuer: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

impl TokenCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self {
            TokenCmd::Issue(args) => args.run(ctx).await,
            TokenCmd::List(args) => args.run(ctx).await,
            TokenCmd::Show(args) => args.run(ctx).await,
            TokenCmd::Update(args) => args.run(ctx).await,
            TokenCmd::Revoke(args) => args.run(ctx).await,
        }
    }
}

impl IssueArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        // Check what can be checked before asking for a secret or touching anything.
        let provider = providers::lookup(self.provider.trim())
            .ok_or_else(|| providers::UpstreamError::UnknownProvider(self.provider.clone()))?;
        let upstream = match (&self.upstream, provider.base_url) {
            (None, None) if stdin_is_terminal() => Some(
                dialoguer::Input::<String>::new()
                    .with_prompt(format!("Upstream base URL for {}", provider.name))
                    .interact_text()?,
            ),
            _ => self.upstream.clone(),
        };
        providers::Route::new(provider.name, upstream.as_deref(), self.auth.as_deref())?;
        let api_key = self.read_api_key()?;

        let store = ctx.store().await?;
        let ring = ctx.keyring_or_create()?;
        let request = IssueRequest {
            provider: provider.name.to_string(),
            upstream,
            auth: self.auth.clone(),
            name: self.name.clone(),
            api_key,
            limits: LimitsChange::from(&self.limits),
        };
        let issued = service::issue(&store, &ring, request).await?;
        store.close().await;
        self.print(&issued)
    }

    fn read_api_key(&self) -> anyhow::Result<SecretString> {
        let key = if let Some(var) = &self.api_key_env {
            let value = std::env::var(var)
                .with_context(|| format!("environment variable {var} is not set"))?;
            SecretString::new(value)
        } else if self.api_key_stdin {
            let mut buf = String::new();
            std::io::stdin()
                .read_to_string(&mut buf)
                .context("cannot read the API key from standard input")?;
            SecretString::new(buf.trim())
        } else if stdin_is_terminal() {
            SecretString::new(
                dialoguer::Password::new()
                    .with_prompt(format!("{} API key", self.provider))
                    .interact()?,
            )
        } else {
            bail!("no API key: give --api-key-env VAR or --api-key-stdin");
        };
        if key.expose().trim().is_empty() {
            bail!("the API key is empty");
        }
        Ok(key)
    }

    fn print(&self, issued: &IssuedToken) -> anyhow::Result<()> {
        let token = issued.token.expose();
        if self.quiet {
            println!("{token}");
            return Ok(());
        }
        if self.json {
            let view = TokenView::new(&issued.record, Utc::now());
            let mut value = serde_json::to_value(&view)?;
            value["token"] = json!(token);
            return print_json(&value);
        }
        let r = &issued.record;
        let label = r
            .name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        println!(
            "Issued token {}{label} for {}, key {}",
            r.id,
            r.provider_name(),
            r.key_hint
        );
        println!(
            "  calls: {}   expires: {}",
            r.limits
                .max_calls
                .map_or("unlimited".to_string(), |m| m.to_string()),
            time(r.limits.expires_at, "never")
        );
        println!();
        println!("{token}");
        println!();
        println!("Use it where the SDK takes an API key, with the relay as base URL, e.g.:");
        println!(
            "  new OpenAI({{ apiKey: TOKEN, baseURL: \"http://RELAY/v1\", dangerouslyAllowBrowser: true }})"
        );
        println!("The token is shown only now; the relay keeps just its fingerprint.");
        Ok(())
    }
}

impl UpdateArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let store = ctx.store().await?;
        let mut change = LimitsChange::from(&self.limits);
        self.clear.apply(&mut change);
        let updated = service::update(&store, &self.id, self.name.clone(), &change).await?;
        store.close().await;
        if self.json {
            return print_json(&TokenView::new(&updated, Utc::now()));
        }
        println!("updated token {}", updated.id);
        Ok(())
    }
}

impl ListArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let store = ctx.store().await?;
        let now = Utc::now();
        let records = service::list(&store, self.all).await?;
        store.close().await;
        if self.json {
            let views: Vec<_> = records.iter().map(|r| TokenView::new(r, now)).collect();
            return print_json(&views);
        }
        if records.is_empty() {
            println!(
                "no tokens{}",
                if self.all {
                    ""
                } else {
                    " (--all shows revoked and expired ones)"
                }
            );
            return Ok(());
        }
        let columns = [
            column("id", |r: &TokenRecord| r.id[..12].to_string()),
            column("name", |r: &TokenRecord| r.name.clone().unwrap_or_default()),
            column("provider", |r: &TokenRecord| r.provider_name().to_string()),
            column("calls", calls),
            column("tokens used", tokens_used),
            column("expires", |r: &TokenRecord| {
                time(r.limits.expires_at, "never")
            }),
            column("status", |r: &TokenRecord| r.status(now).to_string()),
            column("last used", |r: &TokenRecord| time(r.last_used_at, "—")),
        ];
        let t = render(&columns, &records);
        println!("{t}");
        Ok(())
    }
}

impl ShowArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let store = ctx.store().await?;
        let r = service::show(&store, &self.id).await?;
        store.close().await;
        let now = Utc::now();
        if self.json {
            return print_json(&TokenView::new(&r, now));
        }
        let p = r.policy();
        let route = r.route.as_deref();
        let ips: Vec<String> = p.ips.iter().map(|n| n.to_string()).collect();
        let mut t = table(&["field", "value"]);
        for (field, value) in [
            ("id", r.id.clone()),
            ("name", r.name.clone().unwrap_or_default()),
            ("status", r.status(now).to_string()),
            ("provider", r.provider_name().to_string()),
            (
                "upstream",
                route
                    .and_then(|r| r.upstream())
                    .map_or_else(|| "(provider default)".into(), str::to_string),
            ),
            (
                "auth",
                route
                    .and_then(|r| r.auth_override())
                    .map_or_else(|| "(provider default)".into(), |a| a.to_string()),
            ),
            ("key", r.key_hint.clone()),
            ("sealed with key", r.kid.clone()),
            ("calls", calls(&r)),
            ("tokens used", tokens_used(&r)),
            ("created", time(Some(r.created_at), "")),
            ("expires", time(r.limits.expires_at, "never")),
            ("revoked", time(r.revoked_at, "—")),
            ("last used", time(r.last_used_at, "—")),
            ("models", list_or(&p.models, "any")),
            ("origins", list_or(&p.origins, "any")),
            ("client IPs", list_or(&ips, "any")),
            ("endpoints", list_or(&p.endpoints, "provider defaults")),
            (
                "requests/minute",
                p.rpm.map_or("unlimited".into(), |v| v.to_string()),
            ),
            (
                "concurrency",
                p.concurrency.map_or("unlimited".into(), |v| v.to_string()),
            ),
            (
                "output cap",
                p.max_output_tokens
                    .map_or("none".into(), |v| format!("{v} tokens per call")),
            ),
            (
                "realtime session",
                p.max_session_secs.map_or("the relay's limit".into(), |s| {
                    humantime::format_duration(std::time::Duration::from_secs(s.into())).to_string()
                }),
            ),
        ] {
            t.add_row(vec![field.to_string(), value]);
        }
        println!("{t}");
        Ok(())
    }
}

impl RevokeArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let store = ctx.store().await?;
        let record = match (store.resolve_id(&self.id).await, &self.issuer) {
            (Err(crate::store::StoreError::NotFound(_)), Some(issuer)) => {
                let id = crate::token::TokenId::parse(&self.id.to_ascii_lowercase()).ok_or_else(
                    || {
                        anyhow::anyhow!(
                            "an unused signed token is revoked by its full 32-character id"
                        )
                    },
                )?;
                if store.get_issuer(issuer).await?.is_none() {
                    bail!("no issuer named {issuer}");
                }
                let revoked = store
                    .revoke_unused_signed(&id.to_string(), issuer, Utc::now())
                    .await?;
                store.close().await;
                println!("revoked signed token {} before its first use", revoked.id);
                return Ok(());
            }
            (result, _) => result?,
        };
        if let Some(at) = record.revoked_at {
            store.close().await;
            if self.json {
                return print_json(&TokenView::new(&record, Utc::now()));
            }
            println!(
                "token {} was already revoked at {}",
                record.id,
                time(Some(at), "")
            );
            return Ok(());
        }
        if !self.yes {
            if !stdin_is_terminal() {
                bail!(
                    "not revoking {} without confirmation: pass --yes",
                    record.id
                );
            }
            let label = record
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let confirmed = dialoguer::Confirm::new()
                .with_prompt(format!("Revoke token {}{label}?", record.id))
                .default(false)
                .interact()?;
            if !confirmed {
                bail!("not revoked");
            }
        }
        let revoked = service::revoke(&store, &record.id).await?;
        store.close().await;
        if self.json {
            return print_json(&TokenView::new(&revoked, Utc::now()));
        }
        println!("revoked token {}", revoked.id);
        Ok(())
    }
}
