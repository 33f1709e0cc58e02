use clap::Args;
use serde::Serialize;

use super::Context;
use super::output::{column, print_json, render};
use crate::crypto::{KeyInfo, KeyRing};

#[derive(Debug, Args)]
pub struct KeygenCmd {
    /// Make a new active key; older keys stay so that their tokens still open
    #[arg(long, conflicts_with = "list")]
    rotate: bool,
    /// List the key ring (kid, created, active) instead of creating a key
    #[arg(long)]
    list: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct KeyRow<'a> {
    kid: &'a str,
    created_at: chrono::DateTime<chrono::Utc>,
    active: bool,
}

impl KeygenCmd {
    pub fn run(&self, ctx: &Context) -> anyhow::Result<()> {
        if self.list {
            let ring = KeyRing::load(&ctx.keyring_dir())?;
            let keys = ring.list();
            if self.json {
                let rows: Vec<KeyRow> = keys
                    .iter()
                    .map(|k| KeyRow {
                        kid: &k.kid,
                        created_at: k.created_at,
                        active: k.active,
                    })
                    .collect();
                return print_json(&rows);
            }
            let columns = [
                column("kid", |k: &KeyInfo| k.kid.clone()),
                column("created", |k: &KeyInfo| {
                    super::output::time(Some(k.created_at), "")
                }),
                column("active", |k: &KeyInfo| {
                    if k.active { "yes" } else { "" }.to_string()
                }),
            ];
            let t = render(&columns, &keys);
            println!("{t}");
            return Ok(());
        }
        ctx.ensure_data_dir()?;
        let info = KeyRing::generate(&ctx.keyring_dir(), self.rotate)?;
        self.print_new(&info, ctx)
    }

    fn print_new(&self, info: &KeyInfo, ctx: &Context) -> anyhow::Result<()> {
        if self.json {
            return print_json(info);
        }
        let verb = if self.rotate { "rotated to" } else { "created" };
        println!(
            "{verb} server key {} in {}",
            info.kid,
            ctx.keyring_dir().display()
        );
        println!("kid: {}", info.kid);
        print!("{}", info.public_key_pem);
        Ok(())
    }
}
