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
    /// Only tell the relays on this PostgreSQL database to read their key rings again
    /// (after a rotated ring was copied to their hosts); --rotate does it too
    #[arg(long, conflicts_with_all = ["list", "rotate"])]
    announce: bool,
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
    pub async fn run(&self, ctx: &Context) -> anyhow::Result<()> {
        if self.announce {
            anyhow::ensure!(
                !ctx.settings.uses_sqlite(),
                "--announce tells relays sharing a PostgreSQL database; this one is SQLite, \
                 whose relays read the key ring when they start"
            );
            let store = ctx.store().await?;
            crate::server::fleet::announce_rotation(&store).await?;
            eprintln!("told the relays on this database to read their key rings again");
            return Ok(());
        }
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
        self.print_new(&info, ctx)?;
        if self.rotate && !ctx.settings.uses_sqlite() {
            announce_rotation(ctx).await;
        }
        Ok(())
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

/// Tells the relays on a shared PostgreSQL to read their key rings again. A relay whose
/// ring lives elsewhere reads it when its keys directory has the new key (copied there
/// first) and the announcement comes, or at its next start.
async fn announce_rotation(ctx: &Context) {
    let announced = match ctx.store().await {
        Ok(store) => crate::server::fleet::announce_rotation(&store)
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    match announced {
        Ok(()) => eprintln!("announced the rotation to the relays on this database"),
        Err(e) => eprintln!(
            "warning: the relays on this database were not told of the rotation ({e}); they read the key ring at their next start"
        ),
    }
}
