//! relayapi: lets browser frontends call AI APIs without ever seeing the real API key.
//!
//! Layers, each with one job:
//! - [`crypto`], [`token`] and [`secret`]: keys, the token format, secrets that never print;
//! - [`policy`] (what a token may do), [`providers`] (where each provider lives, how it
//!   takes its key, what a call is) and [`issuer`] (the caps of backends that mint tokens);
//! - [`request`]: a request body read and rewritten under a token's policy;
//! - [`usage`]: what a call used, read from the response on its way through;
//! - [`store`]: the only code that queries the database;
//! - [`service`]: token operations shared by the CLI and the admin API;
//! - [`server`]: the relay, its phases and its admin API; [`config`] its settings;
//! - [`cli`]: the commands; [`sdk`]: minting tokens from Rust backends.

pub mod cli;
pub mod config;
pub mod crypto;
pub mod issuer;
pub mod policy;
pub mod providers;
pub mod request;
pub mod sdk;
pub mod secret;
pub mod server;
pub mod service;
pub mod store;
pub mod token;
pub mod usage;
