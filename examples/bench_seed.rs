//! Fills a relayapi database for benchmarks: N extra tokens and M usage records.
//!
//! `cargo run --release --example bench_seed -- DATABASE_URL TOKENS USAGE_RECORDS`

use chrono::Utc;
use relayapi::policy::Limits;
use relayapi::providers::Route;
use relayapi::store::{Migrations, NewToken, Store, UsageRecord};
use relayapi::token::TokenId;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, tokens, records] = args.as_slice() else {
        eprintln!("usage: bench_seed DATABASE_URL TOKENS USAGE_RECORDS");
        std::process::exit(2);
    };
    let tokens: usize = tokens.parse().expect("TOKENS is a number");
    let records: usize = records.parse().expect("USAGE_RECORDS is a number");
    let store = Store::connect(url, Migrations::Apply)
        .await
        .expect("database");
    let started = std::time::Instant::now();
    let mut ids = Vec::with_capacity(tokens);
    for i in 0..tokens {
        let id = TokenId::random().to_string();
        store
            .insert_token(&NewToken {
                id: id.clone(),
                name: Some(format!("seed-{i}")),
                route: Route::new("openai", None, None).expect("openai route"),
                // Not a real token's fingerprint: these tokens exist only to fill the table.
                fingerprint: format!("{id}{id}"),
                kid: "0000000000000000".into(),
                key_hint: "…".into(),
                limits: Limits {
                    max_calls: Some(100),
                    ..Limits::default()
                },
            })
            .await
            .expect("insert token");
        ids.push(id);
    }
    let mut batch = Vec::with_capacity(512);
    for i in 0..records {
        batch.push(UsageRecord {
            token_id: ids
                .get(i % ids.len().max(1))
                .cloned()
                .unwrap_or_else(|| "0".repeat(32)),
            at: Utc::now(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            model: Some("gpt-4o-mini".into()),
            status: 200,
            latency_ms: 1,
            ttfb_ms: 1,
            bytes_in: 100,
            bytes_out: 600,
            prompt_tokens: Some(12),
            completion_tokens: Some(10),
            total_tokens: Some(22),
            stream: false,
            aborted: false,
            estimated: false,
            charged: false,
        });
        if batch.len() == 512 {
            store.insert_usage(&batch).await.expect("insert usage");
            batch.clear();
        }
    }
    store.insert_usage(&batch).await.expect("insert usage");
    eprintln!(
        "seeded {tokens} tokens and {records} usage records in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    store.close().await;
}
