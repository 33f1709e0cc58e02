use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use p256::pkcs8::{DecodePublicKey, EncodePrivateKey, LineEnding};

use super::output::{column, print_json, render, time};
use super::{Context, stdin_is_terminal};
use crate::crypto::ecies::compressed;
use crate::issuer::Issuer;
use crate::issuer::{IssuerCaps, Required};
use crate::service::{self, parse_duration};

#[derive(Debug, Subcommand)]
pub enum IssuerCmd {
    /// Register a backend that mints signed tokens offline, with its caps
    Add(AddArgs),
    /// List issuers
    List(ListArgs),
    /// Revoke an issuer: all its tokens stop working
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// A name for the issuer (letters, digits, '-', '_', '.')
    name: String,
    /// Provider its tokens may use (repeatable; at least one)
    #[arg(long = "provider", value_name = "NAME", required = true)]
    providers: Vec<String>,
    /// Upstream base URL its tokens may name (repeatable; none: providers' own URLs only)
    #[arg(long = "upstream", value_name = "URL")]
    upstreams: Vec<String>,
    /// Longest token lifetime, like 15m or 1h
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    max_lifetime: String,
    /// Most calls per token (tokens without max_calls get this)
    #[arg(long, value_name = "N")]
    max_calls: Option<i64>,
    /// Policy its tokens must carry (repeatable)
    #[arg(long = "require", value_enum, value_name = "POLICY")]
    required: Vec<Required>,
    /// The backend's P-256 public key (PEM or SEC1 hex); without it a key pair is made
    #[arg(long, value_name = "FILE", conflicts_with = "private_key_out")]
    public_key: Option<PathBuf>,
    /// Write the generated private key here (mode 0600) instead of printing it
    #[arg(long, value_name = "FILE")]
    private_key_out: Option<PathBuf>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    name: String,
    /// Do not ask for confirmation
    #[arg(long, short)]
    yes: bool,
}

impl IssuerCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self {
            IssuerCmd::Add(a) => a.run(ctx).await,
            IssuerCmd::List(a) => a.run(ctx).await,
            IssuerCmd::Revoke(a) => a.run(ctx).await,
        }
    }
}

fn read_public_key(path: &PathBuf) -> anyhow::Result<p256::PublicKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return p256::PublicKey::from_public_key_pem(text)
            .map_err(|_| anyhow!("{} is not a P-256 public key (SPKI PEM)", path.display()));
    }
    let bytes =
        hex::decode(text).map_err(|_| anyhow!("{} is neither PEM nor hex", path.display()))?;
    p256::PublicKey::from_sec1_bytes(&bytes)
        .map_err(|_| anyhow!("{} is not a P-256 public key", path.display()))
}

impl AddArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let public = self.public_key.as_ref().map(read_public_key).transpose()?;
        let lifetime =
            parse_duration(&self.max_lifetime).map_err(|m| anyhow!("--max-lifetime: {m}"))?;
        // Refuse an existing output file before anything is registered.
        if let Some(out) = &self.private_key_out
            && out.exists()
        {
            bail!("{} already exists", out.display());
        }
        let store = ctx.store().await?;
        let ring = ctx.keyring_or_create()?;
        let caps = IssuerCaps {
            providers: self.providers.clone(),
            upstreams: self.upstreams.clone(),
            required: self.required.clone(),
            max_lifetime_secs: lifetime.num_seconds(),
            max_calls: self.max_calls,
        };
        let (issuer, secret) = service::add_issuer(&store, &self.name, public, caps).await?;
        store.close().await;
        let relay_public = hex::encode(compressed(&ring.active_public()));
        let private_pem = secret.as_ref().map(|s| {
            s.to_pkcs8_pem(LineEnding::LF)
                .expect("P-256 keys encode as PKCS#8")
        });
        if let (Some(pem), Some(path)) = (&private_pem, &self.private_key_out) {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            file.write_all(pem.as_bytes())?;
        }
        let printed_private = private_pem
            .as_ref()
            .filter(|_| self.private_key_out.is_none());
        if self.json {
            let mut v = serde_json::to_value(&issuer)?;
            v["relay_public_key"] = relay_public.into();
            v["relay_kid"] = ring.active_kid().to_string().into();
            if let Some(pem) = printed_private {
                v["private_key_pem"] = pem.as_str().into();
            }
            return print_json(&v);
        }
        println!("registered issuer {}", issuer.name);
        println!("  issuer public key: {}", issuer.public_key);
        println!(
            "  relay public key:  {relay_public} (kid {})",
            ring.active_kid()
        );
        if let Some(path) = &self.private_key_out {
            println!("  private key written to {}", path.display());
        }
        if let Some(pem) = printed_private {
            eprintln!(
                "The issuer's private key follows. It is shown once and not stored: give it to the backend."
            );
            print!("{}", pem.as_str());
        }
        Ok(())
    }
}

impl ListArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let store = ctx.store().await?;
        let issuers = store.list_issuers().await?;
        store.close().await;
        if self.json {
            return print_json(&issuers);
        }
        let columns = [
            column("name", |i: &Issuer| i.name.clone()),
            column("providers", |i: &Issuer| i.caps.providers.join(", ")),
            column("max lifetime", |i: &Issuer| {
                format!("{}s", i.caps.max_lifetime_secs)
            }),
            column("max calls", |i: &Issuer| {
                i.caps.max_calls.map_or("—".into(), |n| n.to_string())
            }),
            column("requires", |i: &Issuer| {
                let required: Vec<String> = i
                    .caps
                    .required
                    .iter()
                    .filter_map(clap::ValueEnum::to_possible_value)
                    .map(|v| v.get_name().to_string())
                    .collect();
                required.join(", ")
            }),
            column("status", |i: &Issuer| {
                if i.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                }
                .to_string()
            }),
            column("created", |i: &Issuer| time(Some(i.created_at), "")),
        ];
        let t = render(&columns, &issuers);
        println!("{t}");
        Ok(())
    }
}

impl RevokeArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let store = ctx.store().await?;
        if store.get_issuer(&self.name).await?.is_none() {
            bail!("no issuer named {}", self.name);
        }
        if !self.yes {
            if !stdin_is_terminal() {
                bail!(
                    "not revoking issuer {} without confirmation: pass --yes",
                    self.name
                );
            }
            let ok = dialoguer::Confirm::new()
                .with_prompt(format!(
                    "Revoke issuer {} and every token it minted?",
                    self.name
                ))
                .default(false)
                .interact()?;
            if !ok {
                bail!("not revoked");
            }
        }
        store.revoke_issuer(&self.name).await?;
        store.close().await;
        println!("revoked issuer {}", self.name);
        Ok(())
    }
}
