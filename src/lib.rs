//! relayapi: lets browser frontends call AI APIs without ever seeing the real API key.
//!
//! Layers, each with one job:
//! - from the `relayapi-core` crate, re-exported: [`crypto`], [`token`] and [`secret`]
//!   (keys, the token format, secrets that never print), [`policy`] (what a token may do)
//!   and [`providers`] (where each provider lives, how it takes its key, what a call is);
//! - [`issuer`]: the caps of backends that mint tokens;
//! - [`request`]: a request body read and rewritten under a token's policy;
//! - [`usage`]: what a call used, read from the response on its way through;
//! - [`store`]: the only code that queries the database;
//! - [`service`]: token operations shared by the CLI and the admin API;
//! - [`server`]: the relay, its phases and its admin API; [`config`] its settings;
//! - [`cli`]: the commands; [`sdk`] (the `relayapi-sdk` crate): minting tokens from Rust
//!   backends without compiling any of the above.

pub use relayapi_core::{crypto, policy, providers, secret, token};
pub use relayapi_sdk as sdk;

pub mod cli;
pub mod config;
pub mod issuer;
pub mod request;
pub mod server;
pub mod service;
pub mod store;
pub mod usage;
