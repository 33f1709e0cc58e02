//! What every part of relayapi agrees on, without a database, a server or a CLI:
//! - [`crypto`], [`token`] and [`secret`]: keys, the token format (sealed and
//!   issuer-signed), secrets that never print;
//! - [`policy`]: what a token may do;
//! - [`providers`]: where each provider lives, how it takes its key, what a call is.
//!
//! The relay (`relayapi`) and the Rust SDK (`relayapi-sdk`) build on it.

pub mod crypto;
pub mod policy;
pub mod providers;
pub mod secret;
pub mod token;
