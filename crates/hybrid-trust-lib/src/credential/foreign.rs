//! Foreign keys: key credentials on a target application that this host's ledger did not put
//! there, and the rule for pruning them (issue 17; docs/protocol.md §4.9, CVE-2025-53786: a key on a
//! shared first-party service principal lets whoever holds its private key act as that Microsoft
//! service, so only the keys the tool put there should be on it). Pure: the ledger record and
//! `now` come in as arguments.
//!
//! A key is **foreign** when no credential record of the ledger names its certificate for that
//! application, and its certificate is none of the ledger's `cert`, `next_cert` or
//! `previous_cert`. A key whose certificate cannot be told (no `key` and no usable
//! `customKeyIdentifier`) is foreign too: nothing shows the tool put it there.
//!
//! **Another host's** keys are not foreign (issue 24): several admin hosts, each with its own
//! ledger, keep one tenant, and a key one of them uploaded (its display name, set by
//! [`crate::graph::new_key`], starts with `hybrid-trust `) may be the certificate the Front Ends
//! sign with after a roll this ledger never saw. Such a key is listed as another host's and is
//! removed only when named by thumbprint (`credential remove`). A display name is no proof, so
//! only a `Verify` certificate key on an application the tool uploads to counts: any key on
//! Exchange Online's shared principal (`00000002`, where the tool never uploads; CVE-2025-53786)
//! stays foreign whatever its name.
//!
//! **Protected** certificates are never pruned or removed, whatever was asked: the one the ledger
//! says the Front Ends sign with (`cert`) and, during a roll, the one they will sign with
//! (`next_cert`). And no change leaves an application without a valid `Verify` key
//! ([`crate::graph::KeyPlan::check_keeps_a_valid_key`], checked for every change).

use crate::graph::{KeyCredential, KeyPlan, PlanError};
use crate::ledger::TenantRecord;
use chrono::{DateTime, Utc};

/// What `credential prune` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prune {
    /// Keys the ledger did not put there ([`is_foreign`]).
    Foreign,
    /// Keys whose window has ended.
    Expired,
}

impl Prune {
    pub fn name(self) -> &'static str {
        match self {
            Prune::Foreign => "foreign",
            Prune::Expired => "expired",
        }
    }
}

fn ledger_certs(rec: &TenantRecord) -> impl Iterator<Item = &str> {
    [&rec.cert, &rec.next_cert, &rec.previous_cert]
        .into_iter()
        .flatten()
        .map(|c| c.thumbprint_sha1.as_str())
}

/// Where a key on a target application came from, as far as this host can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// This host's ledger put it there, or names its certificate.
    ThisLedger,
    /// hybrid-trust put it there from another host (its display name says so).
    AnotherHost,
    /// Nothing shows the tool put it there.
    Foreign,
}

/// The prefix of the display name every key the tool uploads carries ([`crate::graph::new_key`]).
pub const DISPLAY_NAME_PREFIX: &str = "hybrid-trust ";

/// Whether `k` on `app` looks like a key hybrid-trust uploaded from another host: a `Verify`
/// certificate key on an application the tool uploads to, named as the tool names its keys, or
/// (a Graph that takes kept keys anew renames them after the certificate's subject) whose
/// certificate has the subject of the ledger's current certificate, as a renewed OAuthTokenIssuer
/// certificate does.
fn uploaded_by_the_tool(rec: &TenantRecord, app: &str, k: &KeyCredential) -> bool {
    if !k.is_verify_cert() || app.eq_ignore_ascii_case(crate::microsoft::EXCHANGE_APP_ID) {
        return false;
    }
    let named = k
        .display_name
        .as_deref()
        .is_some_and(|n| n.starts_with(DISPLAY_NAME_PREFIX));
    named
        || rec.cert.as_ref().is_some_and(|current| {
            k.certificate()
                .is_some_and(|c| c.subject == current.subject)
        })
}

/// Where `k`, on application `app`, came from, judged against the ledger (`rec`, none when the
/// tenant is not in this host's ledger).
pub fn origin(rec: Option<&TenantRecord>, app: &str, k: &KeyCredential) -> Origin {
    let ours = match (rec, k.thumbprint()) {
        (Some(rec), Some(tp)) => {
            rec.credentials.iter().any(|c| {
                c.app_id.eq_ignore_ascii_case(app) && c.thumbprint_sha1.eq_ignore_ascii_case(&tp)
            }) || ledger_certs(rec).any(|c| c.eq_ignore_ascii_case(&tp))
        }
        _ => false,
    };
    if ours {
        Origin::ThisLedger
    } else if rec.is_some_and(|r| uploaded_by_the_tool(r, app, k)) {
        Origin::AnotherHost
    } else {
        Origin::Foreign
    }
}

/// Whether `k`, on application `app`, is a key nothing shows the tool put there ([`origin`]).
pub fn is_foreign(rec: Option<&TenantRecord>, app: &str, k: &KeyCredential) -> bool {
    origin(rec, app, k) == Origin::Foreign
}

/// Whether `k` may be the key the Front Ends sign with although this ledger (`rec`) cannot tell:
/// a still-valid `Verify` key that is another host's ([`Origin::AnotherHost`]), or that this
/// ledger knows only as an extra key and whose certificate was issued after the ledger's current
/// one (another host may have rolled the Front Ends to it: found by the model test). With no
/// ledger record, any valid key may be. Such a key is never pruned, and removed only with
/// `--force`; a plain foreign key (an attacker's) stays prunable.
pub fn maybe_in_use(
    rec: Option<&TenantRecord>,
    app: &str,
    k: &KeyCredential,
    now: DateTime<Utc>,
) -> bool {
    if !k.is_verify_cert() || k.is_expired(now) {
        return false;
    }
    let Some(rec) = rec else {
        return true;
    };
    if k.thumbprint()
        .is_some_and(|tp| ledger_certs(rec).any(|c| c.eq_ignore_ascii_case(&tp)))
    {
        return false;
    }
    match origin(Some(rec), app, k) {
        Origin::AnotherHost => true,
        Origin::Foreign => false,
        // Known only as an extra key: in use if issued after the Front Ends' certificate.
        Origin::ThisLedger => rec.cert.as_ref().is_none_or(|current| {
            k.certificate()
                .is_none_or(|c| c.not_before > current.not_before)
        }),
    }
}

/// `credential remove`: the key of a protected certificate is not removed, even when named; nor,
/// unless `force`, a key that [`maybe_in_use`] (`existing`: the application's keys as read).
pub fn check_removable(
    rec: Option<&TenantRecord>,
    app: &str,
    thumbprint: &str,
    existing: &[KeyCredential],
    force: bool,
    now: DateTime<Utc>,
) -> Result<(), PlanError> {
    let tp_is = |k: &KeyCredential| {
        k.thumbprint()
            .is_some_and(|t| t.eq_ignore_ascii_case(thumbprint))
    };
    if !force
        && let Some(k) = existing
            .iter()
            .find(|k| tp_is(k) && maybe_in_use(rec, app, k, now))
    {
        let why = match (rec, origin(rec, app, k), rec.and_then(|r| r.cert.as_ref())) {
            (None, ..) => "the tenant is not in this host's ledger".to_string(),
            (_, Origin::AnotherHost, _) => {
                "it looks like a key hybrid-trust uploaded on another host, which this ledger does not know".to_string()
            }
            (_, _, Some(current)) => format!(
                "it was issued after {}, the certificate this ledger says the Front Ends sign with: another host may have rolled them to it",
                current.thumbprint_sha1
            ),
            (_, _, None) => "this ledger records no certificate for the Front Ends".to_string(),
        };
        return Err(PlanError::MaybeInUse {
            thumbprint: thumbprint.to_ascii_uppercase(),
            why,
        });
    }
    let Some(rec) = rec else {
        return Ok(());
    };
    let is = |c: &Option<crate::ledger::CertRecord>| {
        c.as_ref()
            .is_some_and(|c| c.thumbprint_sha1.eq_ignore_ascii_case(thumbprint))
    };
    let why = if is(&rec.cert) {
        "this ledger records it as the certificate the Front Ends sign with"
    } else if is(&rec.next_cert) {
        "it is the certificate of the pending roll, which the Front Ends sign with from its EffectiveDate"
    } else {
        return Ok(());
    };
    Err(PlanError::InUse {
        thumbprint: thumbprint.to_ascii_uppercase(),
        why,
    })
}

/// The certificates no prune removes: the ledger's `cert` (the Front Ends sign with it) and a
/// pending roll's `next_cert`.
pub fn protected(rec: Option<&TenantRecord>) -> Vec<String> {
    rec.map(|r| {
        [&r.cert, &r.next_cert]
            .into_iter()
            .flatten()
            .map(|c| c.thumbprint_sha1.to_ascii_uppercase())
            .collect()
    })
    .unwrap_or_default()
}

/// The foreign keys among `keys` of `app`.
pub fn foreign_keys<'k>(
    rec: Option<&TenantRecord>,
    app: &str,
    keys: &'k [KeyCredential],
) -> Vec<&'k KeyCredential> {
    keys.iter().filter(|k| is_foreign(rec, app, k)).collect()
}

/// A foreign key as `status --live` reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ForeignKey {
    /// Named as hybrid-trust names its keys: another host's, or someone posing as one. Listed
    /// (and a `--check` WARNING) all the same: this ledger does not know it.
    pub another_host: bool,
    pub app_id: String,
    pub display_name: Option<String>,
    pub end: Option<String>,
    pub key_id: Option<String>,
    pub start: Option<String>,
    pub thumbprint_sha1: Option<crate::ids::Thumbprint>,
}

/// The keys this ledger does not know (foreign, or another host's) of every application read
/// live (`apps`: each application's keys), judged
/// against the tenant's ledger record as it was before the live read replaced its credentials.
pub fn found(rec: &TenantRecord, apps: &[(String, Vec<KeyCredential>)]) -> Vec<ForeignKey> {
    use crate::graph::keys::graph_time;
    apps.iter()
        .flat_map(|(app, keys)| {
            keys.iter()
                .filter(|k| origin(Some(rec), app, k) != Origin::ThisLedger)
                .map(move |k| ForeignKey {
                    another_host: origin(Some(rec), app, k) == Origin::AnotherHost,
                    app_id: app.clone(),
                    display_name: k.display_name.clone(),
                    end: k.end_date_time.map(graph_time),
                    key_id: k.key_id.clone(),
                    start: k.start_date_time.map(graph_time),
                    thumbprint_sha1: k.thumbprint(),
                })
        })
        .collect()
}

/// The plan of `credential prune`: removes the keys `what` selects, except those of a protected
/// certificate; keeps every other valid key; drops the other expired ones only when something is
/// removed anyway (Graph refuses a PATCH that carries an expired key). With nothing to remove, the
/// plan changes nothing.
pub fn plan_prune(
    existing: &[KeyCredential],
    rec: Option<&TenantRecord>,
    app: &str,
    what: Prune,
    now: DateTime<Utc>,
) -> Result<KeyPlan, PlanError> {
    let protected = protected(rec);
    let selected = |k: &KeyCredential| {
        let chosen = match what {
            Prune::Foreign => is_foreign(rec, app, k) && !maybe_in_use(rec, app, k, now),
            Prune::Expired => k.is_expired(now),
        };
        chosen
            && !k
                .thumbprint()
                .is_some_and(|tp| protected.contains(&tp.to_ascii_uppercase()))
    };
    let (removed, rest): (Vec<_>, Vec<_>) = existing.iter().cloned().partition(|k| selected(k));
    if removed.is_empty() {
        return Ok(KeyPlan {
            keep: existing.to_vec(),
            dropped_expired: vec![],
            removed: vec![],
            added: None,
            already_present: None,
        });
    }
    crate::graph::plan::removal(&rest, removed, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{CertRecord, CredentialRecord};
    use base64::Engine as _;
    use chrono::{TimeDelta, TimeZone as _};

    const APP: &str = "00000004-0000-0ff1-ce00-000000000000";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap()
    }

    fn key(cert: &str, end_days: i64) -> KeyCredential {
        KeyCredential {
            key: Some(base64::engine::general_purpose::STANDARD.encode(cert)),
            key_id: Some(format!("id-{cert}")),
            start_date_time: Some(now() - TimeDelta::days(10)),
            end_date_time: Some(now() + TimeDelta::days(end_days)),
            kind: Some("AsymmetricX509Cert".into()),
            usage: Some("Verify".into()),
            ..Default::default()
        }
    }

    fn cert_record(k: &KeyCredential) -> CertRecord {
        CertRecord {
            thumbprint_sha1: k.thumbprint().unwrap(),
            subject: "CN=x".into(),
            not_before: now(),
            not_after: now(),
            der_base64: String::new(),
        }
    }

    fn record(ours: &KeyCredential) -> TenantRecord {
        let mut r = TenantRecord::new("contoso.com", "global", vec![APP.to_string()], now());
        r.credentials.push(CredentialRecord {
            app_id: APP.into(),
            key_id: None,
            thumbprint_sha1: ours.thumbprint().unwrap(),
            start: now(),
            end: now(),
            recorded_at: now(),
        });
        r
    }

    #[test]
    fn a_key_is_foreign_unless_the_ledger_recorded_it_or_names_its_certificate() {
        let ours = key("ours", 100);
        let theirs = key("theirs", 100);
        let rec = record(&ours);
        assert!(!is_foreign(Some(&rec), APP, &ours));
        assert!(is_foreign(Some(&rec), APP, &theirs));
        // Recorded for another application only: foreign on this one.
        assert!(is_foreign(
            Some(&rec),
            "7557eb47-c689-4224-abcf-aef9bd7573df",
            &ours
        ));
        // Each of the ledger's certificates counts as the tool's.
        for slot in 0..3 {
            let mut r = record(&ours);
            let c = Some(cert_record(&theirs));
            match slot {
                0 => r.cert = c,
                1 => r.next_cert = c,
                _ => r.previous_cert = c,
            }
            assert!(!is_foreign(Some(&r), APP, &theirs), "slot {slot}");
        }
        // No ledger record, or a key whose certificate cannot be told: foreign.
        assert!(is_foreign(None, APP, &ours));
        let unknown = KeyCredential {
            key: None,
            ..ours.clone()
        };
        assert!(is_foreign(Some(&rec), APP, &unknown));
        assert_eq!(
            foreign_keys(Some(&rec), APP, &[ours, theirs.clone()]),
            [&theirs]
        );
    }

    #[test]
    fn prune_removes_what_was_asked_and_never_a_protected_certificate() {
        let ours = key("ours", 100);
        let theirs = key("theirs", 100);
        let old_theirs = key("old", -3);
        let mut rec = record(&ours);
        let ex = [ours.clone(), theirs.clone(), old_theirs.clone()];
        let p = plan_prune(&ex, Some(&rec), APP, Prune::Foreign, now()).unwrap();
        assert_eq!(p.removed, [theirs.clone(), old_theirs.clone()]);
        assert_eq!(p.keep, std::slice::from_ref(&ours));
        let p = plan_prune(&ex, Some(&rec), APP, Prune::Expired, now()).unwrap();
        assert_eq!(p.removed, std::slice::from_ref(&old_theirs));
        assert_eq!(p.keep, [ours.clone(), theirs.clone()]);
        // The Front Ends' certificate, and a pending roll's, are never pruned, even when foreign
        // to the credential records or expired.
        rec.cert = Some(cert_record(&theirs));
        rec.next_cert = Some(cert_record(&old_theirs));
        rec.credentials.clear();
        let p = plan_prune(&ex, Some(&rec), APP, Prune::Foreign, now()).unwrap();
        assert_eq!(p.removed, std::slice::from_ref(&ours));
        let p = plan_prune(&ex, Some(&rec), APP, Prune::Expired, now()).unwrap();
        assert!(!p.changes(), "{p:?}");
        // Nothing to remove: nothing changes (no expired key dropped on the side either).
        let rec = record(&ours);
        let p = plan_prune(
            &[ours.clone(), old_theirs.clone()],
            Some(&rec),
            APP,
            Prune::Foreign,
            now(),
        );
        let p = p.unwrap();
        assert_eq!(p.removed, std::slice::from_ref(&old_theirs));
        let p = plan_prune(
            std::slice::from_ref(&ours),
            Some(&rec),
            APP,
            Prune::Foreign,
            now(),
        )
        .unwrap();
        assert!(!p.changes());
    }
}
