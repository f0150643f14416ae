//! Graph's answers about a service principal's keys, on arbitrary bytes after a 10-byte prefix
//! (`now`, thresholds, how the recorded certificate is made): the servicePrincipal object and the
//! collection form as `Graph` parses them (dates outside years 1..=9999 refused), then everything
//! computed from the keys: thumbprints, days left, the plans (upload, re-window, remove), the
//! tenant record `status --live` builds (`fleet::apply_live`), its status row, timeline, table,
//! Prometheus and ICS renderings, reminders and the renewal decision. The same computations also
//! run on the keys as plain serde reads them (no range check), so that the arithmetic itself is
//! fuzzed with dates at the ends of chrono's calendar (the prefix also twists them there). Issue 14, defect 4: a key `endDateTime` of
//! `+262142-12-31T23:59:59Z` panicked `status --live`, `--check` and `--format ics`. None may
//! panic.
//! Run: cargo +nightly fuzz run graph_keys
#![no_main]

#[path = "common.rs"]
mod common;

use hybrid_trust::fleet::{LiveKeys, apply_live};
use hybrid_trust::graph::{self, KeyCredential, ServicePrincipal};
use hybrid_trust::ledger::{CertRecord, TenantRecord};
use libfuzzer_sys::fuzz_target;

const APP: &str = "00000004-0000-0ff1-ce00-000000000000";

fn keys_everything(keys: &[KeyCredential], head: &[u8], now: chrono::DateTime<chrono::Utc>) {
    let (warn, crit, thresholds) = common::days_from(head[9], i64::from(head[1]) << (head[2] % 64));
    for k in keys {
        let _ = (k.thumbprint(), k.is_verify_cert(), k.is_expired(now));
        // `credential list`'s days left.
        let _ = k.end_date_time.map(|e| (e - now).num_days());
        if let Some(e) = k.end_date_time {
            let _ = graph::keys::graph_time(e);
        }
    }
    let tp = keys
        .iter()
        .find_map(KeyCredential::thumbprint)
        .unwrap_or_else(|| "0".repeat(40));
    let _ = graph::plan_remove(keys, &tp, now);
    let new = keys.first().cloned().unwrap_or_default();
    let _ = graph::plan_upload(keys, new.clone(), now);
    // The re-window's two steps: adopt or add, then retire what it supersedes.
    let covered = hybrid_trust::dates::add(now, chrono::TimeDelta::days(i64::from(head[3])));
    if let Ok(p) = graph::plan_rewindow(keys, new.clone(), covered, now) {
        let replacement = p
            .added
            .as_ref()
            .or(p.already_present.as_ref())
            .unwrap_or(&new);
        let superseded = graph::superseded_windows(keys, replacement, covered);
        let id = graph::KeyIdentity::of(replacement);
        let _ = graph::plan_retire(keys, &superseded, &id, now);
        if let Ok(again) = graph::plan_rewindow(keys, new, covered, now) {
            let _ = (p.same_effect(&again), p.is_additive(), p.read_keys().len());
        }
    }
    // The recorded certificate: a sane one, or with the dates of the first key.
    let first = keys.first();
    let sane = (
        hybrid_trust::dates::sub(now, chrono::TimeDelta::days(30)),
        hybrid_trust::dates::add(now, chrono::TimeDelta::days(700)),
    );
    let (nb, na) = match head[9] % 2 {
        0 => sane,
        _ => (
            first.and_then(|k| k.start_date_time).unwrap_or(sane.0),
            first.and_then(|k| k.end_date_time).unwrap_or(sane.1),
        ),
    };
    let mut t = TenantRecord::new("contoso.com", "global", vec![APP.into()], now);
    t.cert = Some(CertRecord {
        thumbprint_sha1: tp,
        subject: "CN=x".into(),
        not_before: nb,
        not_after: na,
        der_base64: String::new(),
    });
    let live = LiveKeys {
        apps: vec![(APP.into(), keys.to_vec())],
        tenant_id: None,
    };
    let (rec, _drift) = apply_live(&t, &live, now);
    common::everything(&rec, now, warn, crit, &thresholds);
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let (head, body) = data.split_at(10);
    let now = common::now_from(head[0], head[1..9].try_into().unwrap());
    // As `Graph` reads it: a single object, or the collection form.
    if let Ok(sp) = graph::parse_service_principal(body) {
        for k in &sp.key_credentials {
            for d in [k.start_date_time, k.end_date_time].into_iter().flatten() {
                assert!(hybrid_trust::dates::in_range(d), "a date past the boundary");
            }
        }
        keys_everything(&sp.key_credentials, head, now);
    }
    if let Ok(list) = graph::parse_service_principals(body) {
        for sp in &list {
            keys_everything(&sp.key_credentials, head, now);
        }
    }
    // As plain serde reads it: no range check, so the arithmetic must hold on its own, also with
    // the dates twisted to the ends of the calendar.
    let raw = match serde_json::from_slice::<ServicePrincipal>(body) {
        Ok(sp) => sp.key_credentials,
        Err(_) => serde_json::from_slice::<Vec<KeyCredential>>(body).unwrap_or_default(),
    };
    if !raw.is_empty() {
        keys_everything(&raw, head, now);
        let twisted: Vec<KeyCredential> = raw
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let b = head[1 + i % 8];
                KeyCredential {
                    start_date_time: k
                        .start_date_time
                        .map(|d| common::twist(d, b.rotate_left(4))),
                    end_date_time: k.end_date_time.map(|d| common::twist(d, b)),
                    ..k.clone()
                }
            })
            .collect();
        keys_everything(&twisted, head, now);
    }
});
