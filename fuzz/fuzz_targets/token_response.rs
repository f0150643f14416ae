//! A token endpoint's 200 answer, on arbitrary bytes after an 9-byte prefix that picks `now`
//! (realistic, or anywhere in chrono's calendar): parsing it as `TokenProvider::request` does,
//! computing its expiry from `now`, and the cache's freshness check. Issue 14, defect 4:
//! `expires_in` 9223372036854775807 (or 1e14 seconds as an integer) panicked. None may panic.
//! Run: cargo +nightly fuzz run token_response
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let (head, body) = data.split_at(9);
    let now = common::now_from(head[0], head[1..9].try_into().unwrap());
    if let Ok(t) = hybrid_trust::sts::parse_token_response(body, now) {
        assert!(hybrid_trust::dates::in_range(t.expires_at));
        assert!(t.expires_at >= now);
        for at in [
            now,
            t.expires_at,
            chrono::DateTime::<chrono::Utc>::MIN_UTC,
            chrono::DateTime::<chrono::Utc>::MAX_UTC,
        ] {
            let _ = t.is_fresh(at);
        }
    }
});
