//! Every integration test, in one binary: one link instead of one per file. Each module is
//! one feature, driven through the real binary or a relay on 127.0.0.1:0 against a real
//! local mock upstream and a real database (`common`).

mod common;

mod admin_api;
mod cli_tokens;
mod completions;
mod faults;
mod fleet;
mod hostile;
mod https;
mod issuers;
mod policies;
mod realtime;
mod relay;
mod secrets;
mod serve_binary;
mod tls_upstream;
mod usage;
