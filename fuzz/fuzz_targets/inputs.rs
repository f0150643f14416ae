//! The other parsers of outside input, on arbitrary bytes, the first byte choosing which: the
//! ledger, the settings file, tenant names, `--start`/`--end` dates, on-prem values (GUID, FQDN,
//! https URL), Graph service principals with their key credentials (thumbprints, a key plan),
//! Entra error responses and the claims of a token. None may panic.
//! Run: cargo +nightly fuzz run inputs
#![no_main]

#[path = "common.rs"]
mod common;

use hybrid_trust::onprem::{Fqdn, Guid, HttpsUrl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 8 {
        0 => {
            // A byte for `now`, a byte for thresholds, then the ledger.
            let Some((&[pick, days], ledger)) = rest.split_first_chunk::<2>() else {
                return;
            };
            let now = common::now_from(pick, [days; 8]);
            let (warn, crit, thresholds) = common::days_from(days, i64::from(days));
            let path = std::path::Path::new("ledger.json");
            if let Ok(l) = hybrid_trust::ledger::store::parse(ledger, path) {
                for t in &l.tenants {
                    common::everything(t, now, warn, crit, &thresholds);
                }
            }
            // Without the date-range check of `parse`: the arithmetic must hold on its own.
            if let Ok(l) = serde_json::from_slice::<hybrid_trust::ledger::Ledger>(ledger) {
                for t in &l.tenants {
                    common::everything(t, now, warn, crit, &thresholds);
                    // And with its dates twisted towards the ends of the calendar.
                    let mut t = t.clone();
                    for c in t.cert.iter_mut().chain(t.next_cert.iter_mut()) {
                        c.not_before = common::twist(c.not_before, pick.rotate_left(4));
                        c.not_after = common::twist(c.not_after, pick);
                    }
                    for c in &mut t.credentials {
                        c.start = common::twist(c.start, days.rotate_left(4));
                        c.end = common::twist(c.end, days);
                    }
                    common::everything(&t, now, warn, crit, &thresholds);
                }
            }
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
