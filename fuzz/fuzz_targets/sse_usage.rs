//! The SSE usage scanner, fed the input in chunks, in both modes.
//!
//! Input: one byte of settings (bit 0: hide the usage-only event; the rest: chunk length
//! 1..=128), then the stream as the upstream sends it, so seeds are plain SSE text.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use relayapi::usage::extract::SseScanner;

fuzz_target!(|data: &[u8]| {
    let Some((&settings, sent)) = data.split_first() else {
        return;
    };
    let hide_usage_only = settings & 1 == 1;
    let chunk_len = usize::from(settings >> 1) + 1;
    let mut scanner = SseScanner::new(hide_usage_only);
    let mut passed = Vec::with_capacity(sent.len());
    for chunk in sent.chunks(chunk_len) {
        passed.extend_from_slice(&scanner.push(Bytes::copy_from_slice(chunk)));
    }
    passed.extend_from_slice(&scanner.finish());
    if !hide_usage_only {
        // Scanning only: the stream passes byte for byte.
        assert_eq!(passed, sent);
    } else {
        // Filtering removes whole events, never adds bytes; without usage nothing goes.
        assert!(passed.len() <= sent.len());
        if !sent.windows(5).any(|w| w == b"usage") {
            assert_eq!(passed, sent);
        }
    }
    // Whatever a provider reported, deriving the total does not overflow or panic.
    let _ = scanner.tally().total();
});
