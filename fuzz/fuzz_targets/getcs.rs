//! Saved Get-Cs* Format-List output (any encoding) and the drift comparison: must never panic.
//! Run: cargo +nightly fuzz run getcs
#![no_main]

use hybrid_trust::onprem;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let objs = onprem::parse_format_list(&onprem::decode_text(data));
    let current = onprem::Current {
        oauth_servers: Some(objs.clone()),
        partner_applications: Some(objs.clone()),
        oauth_configuration: Some(objs.clone()),
        certificates: Some(objs),
    };
    let _ = onprem::compare(
        &current,
        "https://accounts.accesscontrol.windows.net/x/metadata/json/1",
        Some("https://a/b"),
        true,
    );
});
