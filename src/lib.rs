//! relayapi: lets browser frontends call AI APIs without ever seeing the real API key.
//!
//! Layers, each with one job: [`crypto`] and [`token`] (keys and the token format),
//! [`store`] (the only code that queries the database), [`policy`], [`providers`],
//! [`request`] (a request body under a token's policy), [`usage`] (what calls used),
//! [`service`] (token operations shared by every front door), and [`cli`].

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
