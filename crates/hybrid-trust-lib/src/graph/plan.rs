//! What a key change will send, from what Graph holds now: the merge that Graph's replace
//! semantics demand (every key kept is re-sent), the retire plans, and the guards that keep the
//! key the Front Ends sign with (docs/protocol.md §1.3–1.4). Pure: `now` is always an argument.

use super::KeyCredential;
use super::keys::KeyIdentity;
use super::window::{ceil_milli, d};
use chrono::{DateTime, TimeDelta, Utc};

/// What an upload or removal will send, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPlan {
    /// Still-valid keys re-sent as they were.
    pub keep: Vec<KeyCredential>,
    /// Expired keys left out (Graph rejects a PATCH that carries one).
    pub dropped_expired: Vec<KeyCredential>,
    /// Keys removed on request (`credential remove`).
    pub removed: Vec<KeyCredential>,
    /// The key added, if any.
    pub added: Option<KeyCredential>,
    /// The same certificate is already a key: nothing to add.
    pub already_present: Option<KeyCredential>,
}

impl KeyPlan {
    /// Moves the added key's start up to `now` (rounded up to the millisecond) when the plan waited
    /// past it (for a confirmation, the tenant lock, a re-merge), so that a window never starts
    /// before the moment it is sent. The end stays: the window only gets shorter, so the
    /// one-year and certificate rules still hold.
    pub fn start_no_earlier_than(&mut self, now: DateTime<Utc>) -> Result<(), PlanError> {
        let Some(k) = self.added.as_mut() else {
            return Ok(());
        };
        let start = ceil_milli(now);
        if k.start_date_time.is_some_and(|s| s < start) {
            if k.end_date_time.is_some_and(|e| e <= start) {
                return Err(PlanError::WindowPassed(
                    k.end_date_time.map(d).unwrap_or_default(),
                ));
            }
            k.start_date_time = Some(start);
        }
        Ok(())
    }
    /// Issue 24 (clock skew): when Graph's clock (`server_now`, from its `Date`) is behind this
    /// machine's `now` by more than the second `Date` loses, an added key meant to start now
    /// would start in Entra's future and fail the Front Ends until Graph's clock catches up: its
    /// window is moved back by the difference, start and end alike (its length, and so the
    /// one-year rule, stays). A start chosen later than now is left as it is, and so is a
    /// difference of more than an hour.
    pub fn start_by_server_clock(&mut self, now: DateTime<Utc>, server_now: DateTime<Utc>) {
        let behind = now - server_now;
        // Beyond an hour this is no lag but a clock set wrong (or a simulation that moves only
        // this side's clock): the window stays on `now`, as planned.
        if behind <= TimeDelta::seconds(2) || behind > TimeDelta::hours(1) {
            return;
        }
        let Some(k) = self.added.as_mut() else {
            return;
        };
        if let Some(s) = k.start_date_time
            && s <= now + TimeDelta::seconds(1)
        {
            // Never before the certificate's own start (Graph refuses that window).
            let to = k
                .certificate()
                .map_or(s - behind, |c| (s - behind).max(c.not_before));
            let moved = s - to;
            k.start_date_time = Some(to);
            k.end_date_time = k.end_date_time.map(|e| e - moved);
        }
    }
    /// The full keyCredentials array for the PATCH.
    pub fn body(&self) -> Vec<KeyCredential> {
        self.keep
            .iter()
            .cloned()
            .chain(self.added.clone())
            .collect()
    }
    /// Whether anything would change.
    pub fn changes(&self) -> bool {
        self.added.is_some() || !self.dropped_expired.is_empty() || !self.removed.is_empty()
    }
    /// Issue 24: no change may leave a target application without a valid `Verify` key when it
    /// removes one: whatever the command and whatever this host's ledger believes, the Front Ends
    /// sign with some certificate, and an application left with no valid key fails them all.
    /// A kept key counts when it has started and not ended; the added key when it starts now
    /// (its start is moved up to the moment it is sent).
    pub fn check_keeps_a_valid_key(&self, now: DateTime<Utc>) -> Result<(), PlanError> {
        let valid_at = |k: &KeyCredential, t: DateTime<Utc>| {
            k.is_verify_cert() && !k.is_expired(now) && k.start_date_time.is_none_or(|s| s <= t)
        };
        let Some(removed) = self.removed.iter().find(|k| valid_at(k, now)) else {
            return Ok(());
        };
        let soon = now + TimeDelta::seconds(1);
        if self.keep.iter().any(|k| valid_at(k, now))
            || self.added.as_ref().is_some_and(|k| valid_at(k, soon))
        {
            return Ok(());
        }
        Err(PlanError::LastValidKey(
            removed
                .thumbprint()
                .map_or_else(|| "?".to_string(), String::from),
        ))
    }
    /// Whether the change only adds: no valid key is removed (dropping an expired one is no loss).
    pub fn is_additive(&self) -> bool {
        self.removed.is_empty()
    }
    /// The keys the plan was made from, as they were read.
    pub fn read_keys(&self) -> Vec<&KeyCredential> {
        self.keep
            .iter()
            .chain(&self.dropped_expired)
            .chain(&self.removed)
            .collect()
    }
    /// Whether `other` (planned again from a later read) does the same as this plan: the same keys
    /// kept, dropped and removed, and the same certificate and end added (the start may move up).
    pub fn same_effect(&self, other: &KeyPlan) -> bool {
        // By certificate and window: whether Graph keeps keyIds on a re-send is unconfirmed.
        fn same(a: &[KeyCredential], b: &[KeyCredential]) -> bool {
            a.len() == b.len()
                && a.iter().all(|k| {
                    b.iter().any(|o| {
                        KeyIdentity::of(o).same_window(&KeyIdentity::of(k))
                            && o.kind == k.kind
                            && o.usage == k.usage
                    })
                })
        }
        let added = |p: &KeyPlan| {
            p.added
                .as_ref()
                .map(|k| (k.thumbprint(), k.end_date_time.map(|e| e.timestamp())))
        };
        same(&self.keep, &other.keep)
            && same(&self.dropped_expired, &other.dropped_expired)
            && same(&self.removed, &other.removed)
            && added(self) == added(other)
            && match (&self.already_present, &other.already_present) {
                (None, None) => true,
                (Some(a), Some(b)) => KeyIdentity::of(a).same_window(&KeyIdentity::of(b)),
                _ => false,
            }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error(
        "Graph returned key {key_id} without its certificate (`key`), so it cannot be re-sent; refusing to PATCH rather than lose it"
    )]
    KeyNotReturned { key_id: String },
    #[error("no key credential has thumbprint {0}")]
    NoSuchKey(String),
    #[error("the planned key window ended ({0}) while the change waited to be sent")]
    WindowPassed(String),
    #[error(
        "the new window of certificate {0} is no longer on the service principal, so the old one is kept"
    )]
    ReplacementMissing(String),
    #[error("the new window of certificate {0} is not valid now, so the old one is kept")]
    ReplacementNotValid(String),
    #[error("refusing to remove the last valid key of certificate {0}")]
    LastValidKey(String),
    #[error(
        "refusing to remove the key of {thumbprint}: {why}, and removing it would break the trust"
    )]
    InUse {
        thumbprint: String,
        why: &'static str,
    },
    #[error(
        "refusing to remove the key of {thumbprint}: {why}, so the Front Ends may sign with it and removing it would break the trust at once"
    )]
    MaybeInUse { thumbprint: String, why: String },
    #[error(
        "the tenant no longer has the key of certificate {ours} that this ledger records as valid, and has one of certificate {newer} (valid until {newer_end}): another admin may have rolled to {newer} and retired {ours}, so {ours} is not put back"
    )]
    Superseded {
        ours: String,
        newer: String,
        newer_end: String,
    },
}

/// The keys a PATCH keeps (valid ones, as re-sent) and the expired ones it drops; a valid key
/// Graph returned without its `key` stops the plan ([`PlanError::KeyNotReturned`]).
/// The plan that removes `removed` and keeps `rest` (its expired keys dropped, as every PATCH
/// drops them).
pub(crate) fn removal(
    rest: &[KeyCredential],
    removed: Vec<KeyCredential>,
    now: DateTime<Utc>,
) -> Result<KeyPlan, PlanError> {
    let (keep, dropped_expired) = split_existing(rest, now)?;
    Ok(KeyPlan {
        keep,
        dropped_expired,
        removed,
        added: None,
        already_present: None,
    })
}

pub(crate) fn split_existing(
    existing: &[KeyCredential],
    now: DateTime<Utc>,
) -> Result<(Vec<KeyCredential>, Vec<KeyCredential>), PlanError> {
    let mut keep = Vec::new();
    let mut expired = Vec::new();
    for k in existing {
        if k.is_expired(now) {
            expired.push(k.clone());
        } else if k.key.is_none() {
            return Err(PlanError::KeyNotReturned {
                key_id: k.key_id.clone().unwrap_or_else(|| "(no keyId)".into()),
            });
        } else {
            keep.push(k.retained());
        }
    }
    Ok((keep, expired))
}

/// Adds `new` unless a key that `is_same` is already there; keeps every other still-valid key as
/// it was; drops expired keys (Graph rejects a PATCH that carries one).
fn plan_add(
    existing: &[KeyCredential],
    new: KeyCredential,
    now: DateTime<Utc>,
    is_same: impl Fn(&KeyCredential) -> bool,
) -> Result<KeyPlan, PlanError> {
    if let Some(present) = existing.iter().find(|k| is_same(k)) {
        return Ok(KeyPlan {
            keep: existing.to_vec(),
            dropped_expired: vec![],
            removed: vec![],
            added: None,
            already_present: Some(present.clone()),
        });
    }
    let (keep, dropped_expired) = split_existing(existing, now)?;
    let mut plan = KeyPlan {
        keep,
        dropped_expired,
        removed: vec![],
        added: Some(new),
        already_present: None,
    };
    plan.start_no_earlier_than(now)?;
    Ok(plan)
}

/// Adds `new` (unless its certificate is already a valid key), keeps every other still-valid key
/// as it was, drops expired keys.
pub fn plan_upload(
    existing: &[KeyCredential],
    new: KeyCredential,
    now: DateTime<Utc>,
) -> Result<KeyPlan, PlanError> {
    let tp = new.thumbprint();
    plan_add(existing, new, now, |k| {
        // The same certificate as another type or usage (an `X509CertAndPassword`/`Sign` key)
        // is not the `Verify` key Entra checks assertions against: only that one counts.
        k.is_verify_cert() && !k.is_expired(now) && k.thumbprint().is_some() && k.thumbprint() == tp
    })
}

/// Removes the `Verify` keys whose certificate has `thumbprint` (the keys this tool manages; a key
/// of the same certificate with another type or usage stays), keeps the other valid ones, drops
/// expired.
pub fn plan_remove(
    existing: &[KeyCredential],
    thumbprint: &str,
    now: DateTime<Utc>,
) -> Result<KeyPlan, PlanError> {
    let tp = thumbprint.to_ascii_uppercase();
    let (removed, rest): (Vec<_>, Vec<_>) = existing
        .iter()
        .cloned()
        .partition(|k| k.is_verify_cert() && k.thumbprint().as_deref() == Some(tp.as_str()));
    if removed.is_empty() {
        return Err(PlanError::NoSuchKey(tp));
    }
    removal(&rest, removed, now)
}

/// Re-window: adds `new` (a new window of a certificate that is already there) and keeps every
/// valid key, the old window included; the old one is retired by [`plan_retire`] once the new
/// window has started, so no moment is left without a valid key.
///
/// When a `Verify` key of the same certificate already covers the tenant until `covered_until`
/// (another host or admin renewed it, or an earlier attempt of this run), that key is adopted as
/// the new window instead of adding a second one: Graph is the truth, the ledger is only this
/// host's memory. The new window itself is known by its certificate and its end, as its start may
/// have been moved up to the moment it was sent.
pub fn plan_rewindow(
    existing: &[KeyCredential],
    new: KeyCredential,
    covered_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<KeyPlan, PlanError> {
    let (tp, end) = (new.thumbprint(), new.end_date_time);
    // Of several covering windows, the one that lasts longest. Only a window that has started
    // is adopted: one that starts later (added with a chosen start) leaves a gap until then.
    let covering = existing
        .iter()
        .filter(|k| {
            k.is_verify_cert()
                && !k.is_expired(now)
                && k.start_date_time.is_none_or(|s| s <= now)
                && k.thumbprint().is_some()
                && k.thumbprint() == tp
                && k.end_date_time
                    .is_some_and(|e| Some(e) == end || e >= covered_until)
        })
        .max_by_key(|k| k.end_date_time)
        .cloned();
    plan_add(existing, new, now, |k| Some(k) == covering.as_ref())
}

/// Refuses to re-window a certificate whose key somebody removed while it was still valid, when
/// the tenant now has a valid key of another certificate: a roll finished from another host's
/// ledger (its old key retired), and putting the old key back would undo it (two ledgers, one
/// tenant). `recorded_until` is this host's ledger's end for the certificate's key on this
/// application: only a key the ledger knows to be still valid counts as removed on purpose. An
/// expired key that Graph dropped, or one this ledger never had, is put back as usual.
pub fn refuse_removed(
    existing: &[KeyCredential],
    new: &KeyCredential,
    recorded_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), PlanError> {
    let tp = new.thumbprint();
    if tp.is_none() || recorded_until.is_none_or(|e| e <= now) {
        return Ok(());
    }
    let verify = |k: &&KeyCredential| k.is_verify_cert() && k.thumbprint().is_some();
    if existing.iter().filter(verify).any(|k| k.thumbprint() == tp) {
        return Ok(());
    }
    let other = existing
        .iter()
        .filter(verify)
        .filter(|k| !k.is_expired(now) && k.thumbprint() != tp)
        .max_by_key(|k| k.end_date_time);
    match other {
        None => Ok(()),
        Some(k) => Err(PlanError::Superseded {
            ours: tp.map(String::from).unwrap_or_default(),
            newer: k.thumbprint().map(String::from).unwrap_or_default(),
            newer_end: k
                .end_date_time
                .map(|e| e.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
        }),
    }
}

/// The windows a re-window supersedes, identified in the read taken before it was added: the
/// `Verify` keys of the replacement's certificate, other than the replacement, that end before
/// `covered_until`. Identified by keyId, certificate and dates, so that [`plan_retire`] never
/// removes a key it did not see here (another host's window added since, for one).
pub fn superseded_windows(
    before: &[KeyCredential],
    replacement: &KeyCredential,
    covered_until: DateTime<Utc>,
) -> Vec<KeyIdentity> {
    let new = KeyIdentity::of(replacement);
    before
        .iter()
        .filter(|k| {
            k.is_verify_cert()
                && k.thumbprint().is_some()
                && k.thumbprint() == new.thumbprint
                && !KeyIdentity::of(k).same_window(&new)
                && k.end_date_time.is_some_and(|e| e < covered_until)
        })
        .map(KeyIdentity::of)
        .collect()
}

/// Retires superseded windows (from [`superseded_windows`]) once their replacement is in place.
/// It removes only `Verify` keys that match a superseded window (certificate, start and end to
/// the second; not the keyId, which Graph may give a re-sent key anew: unconfirmed), and only when
/// the replacement (same certificate and window) is present on the service principal as a
/// `Verify` key that has started and lasts at least as long as every window it removes; so it
/// never removes the last valid key of the certificate. Anything else is refused, and nothing is
/// removed.
///
/// `taken_anew` are superseded windows as Graph re-took them in the PATCH that added the
/// replacement (issue 28, `--key-resend minimal`: a new keyId and the certificate's validity as
/// the window): they are retired too, even though Graph made them outlast the replacement, as
/// their length is Graph's doing, not a window anyone chose (the replacement is valid now, and a
/// kept key re-taken the same way lasts as long).
pub fn plan_retire(
    existing: &[KeyCredential],
    superseded: &[KeyIdentity],
    taken_anew: &[KeyIdentity],
    replacement: &KeyIdentity,
    now: DateTime<Utc>,
) -> Result<KeyPlan, PlanError> {
    let tp = replacement
        .thumbprint
        .clone()
        .map(String::from)
        .unwrap_or_default();
    let Some(r) = existing
        .iter()
        .find(|k| k.is_verify_cert() && KeyIdentity::of(k).same_window(replacement))
    else {
        return Err(PlanError::ReplacementMissing(tp));
    };
    if r.start_date_time.is_some_and(|s| s > now) || r.is_expired(now) {
        return Err(PlanError::ReplacementNotValid(tp));
    }
    let (removed, rest): (Vec<_>, Vec<_>) = existing.iter().cloned().partition(|k| {
        let id = KeyIdentity::of(k);
        k.is_verify_cert()
            && !id.same_window(replacement)
            && superseded
                .iter()
                .chain(taken_anew)
                .any(|s| s.same_window(&id))
    });
    let replacement_end = r.end_date_time.map(|e| e.timestamp());
    if removed.iter().any(|k| {
        k.end_date_time.map(|e| e.timestamp()) > replacement_end
            && !taken_anew
                .iter()
                .any(|s| s.same_window(&KeyIdentity::of(k)))
    }) {
        return Err(PlanError::ReplacementNotValid(tp));
    }
    let valid_left = rest.iter().any(|k| {
        k.is_verify_cert()
            && k.thumbprint().as_deref() == Some(tp.as_str())
            && k.start_date_time.is_none_or(|s| s <= now)
            && !k.is_expired(now)
    });
    if !removed.is_empty() && !valid_left {
        return Err(PlanError::LastValidKey(tp));
    }
    removal(&rest, removed, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::keys::*;
    use crate::graph::window::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use chrono::TimeZone as _;
    use proptest::prelude::*;

    fn t(y: i32, m: u32, dd: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, dd, 0, 0, 0).unwrap()
    }

    #[test]
    fn thumbprint_from_every_custom_key_identifier_form() {
        let hex = "84E05C1D98BCE3A5421D225B140B36E86A3D5534";
        let bytes: Vec<u8> = (0..20)
            .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap())
            .collect();
        let b64 = STANDARD.encode(&bytes);
        for form in [
            hex.to_string(),
            hex.to_ascii_lowercase(),
            b64.clone(),
            STANDARD.encode(&b64),
            STANDARD.encode(hex),
        ] {
            let k = KeyCredential {
                custom_key_identifier: Some(form.clone()),
                ..Default::default()
            };
            assert_eq!(k.thumbprint().as_deref(), Some(hex), "{form}");
        }
        assert_eq!(KeyCredential::default().thumbprint(), None);
        assert_eq!(
            KeyCredential {
                custom_key_identifier: Some("aGVsbG8=".into()),
                ..Default::default()
            }
            .thumbprint(),
            None
        );
    }

    #[test]
    fn dates_go_to_graph_with_their_fraction_in_at_most_seven_digits() {
        let whole = t(2026, 11, 22);
        assert_eq!(graph_time(whole), "2026-11-22T00:00:00Z");
        assert_eq!(
            graph_time(whole + TimeDelta::milliseconds(345)),
            "2026-11-22T00:00:00.345Z"
        );
        // A time Graph gave with 7 digits goes back as it came.
        let read: DateTime<Utc> = "2024-09-03T15:50:38.8335376Z".parse().unwrap();
        assert_eq!(graph_time(read), "2024-09-03T15:50:38.8335376Z");
    }

    #[test]
    fn a_plan_that_waited_starts_when_it_is_sent() {
        let added = KeyCredential {
            start_date_time: Some(t(2026, 1, 1)),
            end_date_time: Some(t(2026, 12, 1)),
            ..Default::default()
        };
        let plan = KeyPlan {
            keep: vec![],
            dropped_expired: vec![],
            removed: vec![],
            added: Some(added),
            already_present: None,
        };
        // Sent before the start: unchanged.
        let mut p = plan.clone();
        p.start_no_earlier_than(t(2025, 12, 31)).unwrap();
        assert_eq!(p, plan);
        // Sent 90.5002 s after the planned start: starts then (to the ms, rounded up), same end.
        let mut p = plan.clone();
        let sent = t(2026, 1, 1) + TimeDelta::microseconds(90_500_200);
        p.start_no_earlier_than(sent).unwrap();
        let k = p.added.as_ref().unwrap();
        assert_eq!(
            k.start_date_time,
            Some(t(2026, 1, 1) + TimeDelta::milliseconds(90_501))
        );
        assert_eq!(k.end_date_time, Some(t(2026, 12, 1)));
        // Sent after the end: refused rather than sent empty.
        let mut p = plan.clone();
        assert!(matches!(
            p.start_no_earlier_than(t(2026, 12, 2)),
            Err(PlanError::WindowPassed(_))
        ));
    }

    #[test]
    fn window_rule_examples() {
        let now =
            Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + TimeDelta::milliseconds(400);
        let (nb, na) = (t(2026, 1, 1), t(2030, 1, 1));
        let (s, e) = window(nb, na, None, None, now).unwrap();
        assert_eq!(s, now, "never before now, valid at once");
        let (s, _) = window(nb, na, None, None, now + TimeDelta::microseconds(1)).unwrap();
        assert_eq!(s, now + TimeDelta::milliseconds(1), "rounded up to the ms");
        assert_eq!(
            e,
            Utc.with_ymd_and_hms(2027, 11, 22, 10, 0, 0).unwrap(),
            "a year on, rounded down to the second"
        );
        let (_, e) = window(nb, t(2027, 3, 1), None, None, now).unwrap();
        assert_eq!(e, t(2027, 3, 1), "never beyond the certificate");
        let future_nb = t(2027, 1, 1);
        assert_eq!(
            window(future_nb, na, None, None, now).unwrap().0,
            future_nb,
            "never before notBefore"
        );
        assert!(matches!(
            window(nb, na, Some(t(2026, 1, 2)), None, now),
            Err(WindowError::StartTooEarly { .. })
        ));
        assert!(matches!(
            window(nb, na, None, Some(t(2028, 1, 1)), now),
            Err(WindowError::EndTooLate { .. })
        ));
        assert!(matches!(
            window(nb, na, Some(t(2027, 1, 2)), Some(t(2027, 1, 1)), now),
            Err(WindowError::EndNotAfterStart { .. })
        ));
        assert!(matches!(
            window(nb, t(2026, 6, 1), None, None, now),
            Err(WindowError::CertificateExpired(_))
        ));
    }

    proptest! {
        #[test]
        fn any_accepted_window_obeys_the_rule(
            nb_off in -800i64..800, life in 1i64..2000, s_off in proptest::option::of(-100i64..900), e_off in proptest::option::of(-100i64..1200)
        ) {
            let now = t(2026, 11, 22);
            let nb = now + TimeDelta::days(nb_off);
            let na = nb + TimeDelta::days(life);
            let start = s_off.map(|o| now + TimeDelta::days(o));
            let end = e_off.map(|o| now + TimeDelta::days(o));
            if let Ok((s, e)) = window(nb, na, start, end, now) {
                prop_assert!(s >= now && s >= nb);
                prop_assert!(e > s);
                prop_assert!(e <= s + TimeDelta::days(365));
                prop_assert!(e <= na);
            }
        }

        #[test]
        fn upload_keeps_every_valid_key_and_never_duplicates(
            ends in proptest::collection::vec(-50i64..500, 0..6), dup in any::<bool>()
        ) {
            let now = t(2026, 11, 22);
            let existing: Vec<KeyCredential> = ends.iter().enumerate().map(|(i, e)| KeyCredential {
                key: Some(STANDARD.encode(format!("cert-{i}"))),
                key_id: Some(format!("id-{i}")),
                end_date_time: Some(now + TimeDelta::days(*e)),
                start_date_time: Some(now - TimeDelta::days(10)),
                kind: Some("AsymmetricX509Cert".into()),
                usage: Some("Verify".into()),
                ..Default::default()
            }).collect();
            let new_cert = if dup && !existing.is_empty() { existing[0].key.clone() } else { Some(STANDARD.encode("new-cert")) };
            let new = KeyCredential { key: new_cert, end_date_time: Some(now + TimeDelta::days(300)), ..Default::default() };
            let plan = plan_upload(&existing, new.clone(), now).unwrap();
            let body = plan.body();
            for k in existing.iter().filter(|k| !k.is_expired(now)) {
                prop_assert!(body.iter().any(|b| b.thumbprint() == k.thumbprint() && b.key_id == k.key_id), "a valid key was lost");
            }
            prop_assert!(body.iter().all(|b| !b.is_expired(now)) || plan.already_present.is_some());
            let n_new = body.iter().filter(|b| b.thumbprint() == new.thumbprint()).count();
            prop_assert_eq!(n_new, 1, "the certificate is there exactly once");
        }
    }

    fn verify_key(cert: &str, id: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> KeyCredential {
        KeyCredential {
            key: Some(STANDARD.encode(cert)),
            key_id: Some(id.into()),
            start_date_time: Some(start),
            end_date_time: Some(end),
            kind: Some("AsymmetricX509Cert".into()),
            usage: Some("Verify".into()),
            ..Default::default()
        }
    }

    #[test]
    fn upload_matches_on_certificate_type_and_usage() {
        let now = t(2026, 11, 22);
        let mut sign = verify_key("c", "s", now, t(2027, 6, 1));
        sign.kind = Some("X509CertAndPassword".into());
        sign.usage = Some("Sign".into());
        let new = verify_key("c", "n", now, t(2027, 11, 1));
        let plan = plan_upload(std::slice::from_ref(&sign), new.clone(), now).unwrap();
        assert_eq!(
            plan.added.as_ref().map(|k| k.key_id.clone()),
            Some(Some("n".into()))
        );
        assert_eq!(plan.keep, vec![sign.clone()]);
        // And `credential remove` leaves the Sign key alone.
        let both = [sign.clone(), new];
        let plan = plan_remove(&both, &both[1].thumbprint().unwrap(), now).unwrap();
        assert_eq!(plan.keep, vec![sign]);
        assert_eq!(plan.removed.len(), 1);
    }

    #[test]
    fn a_rewindow_adopts_a_window_another_host_added() {
        let now = t(2026, 11, 22);
        let old = verify_key("c", "old", t(2025, 12, 1), t(2026, 12, 10));
        let theirs = verify_key("c", "theirs", now, t(2027, 11, 21));
        let ours = verify_key("c", "ours", now, t(2027, 11, 22));
        let covered = now + TimeDelta::days(30);
        // Nothing covers: ours is added next to the old window.
        let plan = plan_rewindow(std::slice::from_ref(&old), ours.clone(), covered, now).unwrap();
        assert_eq!(plan.added, Some(ours.clone()));
        assert_eq!(plan.keep, vec![old.clone()]);
        // Another host's year-long window of the same certificate: adopted, nothing added.
        let plan =
            plan_rewindow(&[old.clone(), theirs.clone()], ours.clone(), covered, now).unwrap();
        assert!(!plan.changes());
        assert_eq!(plan.already_present, Some(theirs.clone()));
        // A window that starts later is not adopted (it would leave a gap until it starts).
        let mut future = theirs.clone();
        future.start_date_time = Some(now + TimeDelta::days(60));
        let plan = plan_rewindow(&[old.clone(), future], ours.clone(), covered, now).unwrap();
        assert_eq!(plan.added, Some(ours.clone()));
        // Our own window, after a crossed write: found again by its end.
        let plan = plan_rewindow(&[old.clone(), ours.clone()], ours.clone(), covered, now).unwrap();
        assert_eq!(plan.already_present, Some(ours.clone()));
        // A Sign key or another certificate does not count.
        let mut sign = theirs.clone();
        sign.usage = Some("Sign".into());
        let other = verify_key("d", "d", now, t(2027, 11, 21));
        let plan = plan_rewindow(&[old, sign, other], ours, covered, now).unwrap();
        assert!(plan.added.is_some());
    }

    #[test]
    fn a_rewindow_does_not_bring_back_a_key_removed_while_valid_for_another_certificate() {
        let now = t(2026, 11, 22);
        let ours = verify_key("old", "ours", now, t(2027, 11, 22));
        let newer = verify_key("new", "n", t(2026, 11, 20), t(2027, 3, 20));
        let recorded = Some(t(2026, 12, 10));
        // The ledger's key is still valid, the tenant has only another certificate's: refused
        // (whatever the lengths: the other key may end before the window we would add).
        let e = refuse_removed(std::slice::from_ref(&newer), &ours, recorded, now).unwrap_err();
        assert!(
            matches!(&e, PlanError::Superseded { ours: o, newer: n, newer_end } if *o == ours.thumbprint().unwrap() && *n == newer.thumbprint().unwrap() && newer_end == "2027-03-20"),
            "{e}"
        );
        // One of ours still there (even expired): a re-window as usual.
        let lapsed = verify_key("old", "o", t(2025, 11, 1), t(2026, 11, 1));
        assert!(refuse_removed(&[newer.clone(), lapsed], &ours, recorded, now).is_ok());
        // The ledger's key had ended (Graph dropped it as expired), or the ledger has none: the
        // trust needs ours back.
        assert!(
            refuse_removed(
                std::slice::from_ref(&newer),
                &ours,
                Some(t(2026, 11, 1)),
                now
            )
            .is_ok()
        );
        assert!(refuse_removed(std::slice::from_ref(&newer), &ours, None, now).is_ok());
        // Nothing else on the tenant, or only an expired key or a Sign key of another one.
        assert!(refuse_removed(&[], &ours, recorded, now).is_ok());
        let gone = verify_key("new", "g", t(2025, 1, 1), t(2026, 1, 1));
        assert!(refuse_removed(&[gone], &ours, recorded, now).is_ok());
        let mut sign = newer.clone();
        sign.usage = Some("Sign".into());
        assert!(refuse_removed(&[sign], &ours, recorded, now).is_ok());
    }

    #[test]
    fn retiring_removes_only_what_was_identified_and_only_behind_a_valid_replacement() {
        let now = t(2026, 11, 22);
        let covered = now + TimeDelta::days(30);
        let old = verify_key("c", "old", t(2025, 12, 1), t(2026, 12, 10));
        let ours = verify_key("c", "ours", now, t(2027, 11, 22));
        let theirs = verify_key("c", "theirs", now, t(2027, 11, 21));
        let other_cert_old = verify_key("d", "d", t(2025, 12, 1), t(2026, 12, 10));
        // Identified in the read before the new window was added.
        let superseded = superseded_windows(&[old.clone(), other_cert_old.clone()], &ours, covered);
        assert_eq!(superseded, vec![KeyIdentity::of(&old)]);
        let replacement = KeyIdentity::of(&ours);
        let later = now + TimeDelta::seconds(2);
        // The replacement is there and started: the old window goes, another host's window and
        // the other certificate stay.
        let ex = [
            old.clone(),
            ours.clone(),
            theirs.clone(),
            other_cert_old.clone(),
        ];
        let plan = plan_retire(&ex, &superseded, &[], &replacement, later).unwrap();
        assert_eq!(plan.removed, vec![old.clone()]);
        assert_eq!(
            plan.keep,
            vec![ours.clone(), theirs.clone(), other_cert_old.clone()]
        );
        // Another host removed our window: nothing is removed.
        let ex = [old.clone(), theirs.clone()];
        assert_eq!(
            plan_retire(&ex, &superseded, &[], &replacement, later),
            Err(PlanError::ReplacementMissing(
                ours.thumbprint().unwrap().to_string()
            ))
        );
        // The replacement has not started yet: nothing is removed.
        assert_eq!(
            plan_retire(
                &[old.clone(), ours.clone()],
                &superseded,
                &[],
                &replacement,
                now - TimeDelta::seconds(1)
            ),
            Err(PlanError::ReplacementNotValid(
                ours.thumbprint().unwrap().to_string()
            ))
        );
        // The old window re-sent under a new keyId (whether Graph keeps keyIds is unconfirmed) is
        // still the old window; a key of another usage with its dates is not.
        let mut renamed = old.clone();
        renamed.key_id = Some("other".into());
        let mut sign = old.clone();
        sign.usage = Some("Sign".into());
        let plan = plan_retire(
            &[renamed.clone(), sign.clone(), ours.clone()],
            &superseded,
            &[],
            &replacement,
            later,
        )
        .unwrap();
        assert_eq!(plan.removed, vec![renamed]);
        assert_eq!(plan.keep, vec![sign, ours.clone()]);
        // A replacement that ends before the window it would replace: nothing is removed.
        let mut long_old = old.clone();
        long_old.end_date_time = Some(t(2028, 1, 1));
        let sup = [KeyIdentity::of(&long_old)];
        assert_eq!(
            plan_retire(
                &[long_old.clone(), ours.clone()],
                &sup,
                &[],
                &replacement,
                later
            ),
            Err(PlanError::ReplacementNotValid(
                ours.thumbprint().unwrap().to_string()
            ))
        );
        // Unless Graph itself made it that long when it took the kept key anew (issue 28,
        // `--key-resend minimal`): then it is retired like the window it was.
        let plan = plan_retire(
            &[long_old.clone(), ours.clone()],
            &[],
            &sup,
            &replacement,
            later,
        )
        .unwrap();
        assert_eq!(plan.removed, vec![long_old]);
        assert_eq!(plan.keep, vec![ours.clone()]);
        // The replacement and the superseded window being one key: never removed.
        let same = [KeyIdentity::of(&ours)];
        let plan =
            plan_retire(std::slice::from_ref(&ours), &same, &[], &replacement, later).unwrap();
        assert!(plan.removed.is_empty() && !plan.changes());
    }

    #[test]
    fn plans_compare_by_what_they_do() {
        let now = t(2026, 11, 22);
        let a = verify_key("a", "a", now, t(2027, 6, 1));
        let b = verify_key("b", "b", now, t(2027, 6, 1));
        let new = verify_key("n", "n", now, t(2027, 11, 1));
        let p1 = plan_upload(std::slice::from_ref(&a), new.clone(), now).unwrap();
        let mut moved = new.clone();
        moved.start_date_time = Some(now + TimeDelta::seconds(30));
        let p2 = plan_upload(std::slice::from_ref(&a), moved, now).unwrap();
        assert!(p1.same_effect(&p2), "a moved start is the same change");
        let p3 = plan_upload(&[a.clone(), b.clone()], new.clone(), now).unwrap();
        assert!(!p1.same_effect(&p3), "a key appeared meanwhile");
        assert!(p3.is_additive());
        let r = plan_remove(&[a.clone(), b], &a.thumbprint().unwrap(), now).unwrap();
        assert!(!r.is_additive());
        assert_eq!(p3.read_keys().len(), 2);
    }

    #[test]
    fn a_key_returned_without_its_certificate_blocks_the_patch() {
        let now = t(2026, 11, 22);
        let k = KeyCredential {
            key: None,
            key_id: Some("abc".into()),
            end_date_time: Some(t(2027, 1, 1)),
            custom_key_identifier: Some("84E05C1D98BCE3A5421D225B140B36E86A3D5534".into()),
            ..Default::default()
        };
        let new = KeyCredential {
            key: Some(STANDARD.encode("x")),
            ..Default::default()
        };
        assert_eq!(
            plan_upload(&[k], new, now),
            Err(PlanError::KeyNotReturned {
                key_id: "abc".into()
            })
        );
    }
}
