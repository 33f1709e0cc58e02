//! The server's key ring and the ECIES construction tokens are sealed with.

pub mod ecies;
pub mod keyring;

pub use keyring::{KeyInfo, KeyRing, KeyRingError, Kid};
