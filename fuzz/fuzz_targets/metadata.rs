//! The metadata document parser (ACS/SharePoint JSON, OpenID configuration, JWKS) on arbitrary
//! bytes: must never panic. Run: cargo +nightly fuzz run metadata
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hybrid_trust::tenant::parse_document(data, chrono::Utc::now());
});
