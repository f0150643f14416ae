//! The other parsers of outside input, on arbitrary bytes, the first byte choosing which: the
//! ledger, the settings file, tenant names, `--start`/`--end` dates, on-prem values (GUID, FQDN,
//! https URL), Graph service principals with their key credentials (thumbprints, a key plan),
//! Entra error responses and the claims of a token. None may panic.
//! Run: cargo +nightly fuzz run inputs
#![no_main]

use hybrid_trust::onprem::{Fqdn, Guid, HttpsUrl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 8 {
        0 => {
            let _ = hybrid_trust::ledger::store::parse(rest, std::path::Path::new("ledger.json"));
        }
        1 => {
            let _ = hybrid_trust::config::Settings::parse(&text);
        }
        2 => {
            let _ = hybrid_trust::tenant::TenantRef::parse(&text);
        }
        3 => {
            let _ = hybrid_trust::cli::parse_date("--start", &text);
        }
        4 => {
            let _ = Guid::parse("GUID", &text);
            let _ = Fqdn::parse("FQDN", &text);
            let _ = HttpsUrl::parse("URL", &text);
        }
        5 => {
            if let Ok(sp) = serde_json::from_slice::<hybrid_trust::graph::ServicePrincipal>(rest) {
                for k in &sp.key_credentials {
                    let _ = (k.thumbprint(), k.is_verify_cert());
                }
                let _ = hybrid_trust::graph::plan_remove(
                    &sp.key_credentials,
                    "0000000000000000000000000000000000000000",
                    chrono::Utc::now(),
                );
            }
        }
        6 => {
            if let Ok(r) = serde_json::from_slice::<hybrid_trust::sts::EntraErrorResponse>(rest) {
                let _ = r.summary();
            }
        }
        _ => {
            let _ = hybrid_trust::sts::unverified_claim(&text, "tid");
        }
    }
});
