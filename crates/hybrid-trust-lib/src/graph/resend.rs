//! How the keys a PATCH keeps are sent again, and what Graph made of them (docs/protocol.md §1.4 and
//! §6 item 9, unconfirmed [U]). Pure: `now` is an argument.
//!
//! Graph's PATCH replaces the whole `keyCredentials` collection, so every key that stays must be
//! sent again. What real Graph accepts for such a retained key is not known, and each answer has
//! a source:
//! - every property back, as read: the GDC how-to re-sends `customKeyIdentifier`, `type`,
//!   `usage`, `key` and `displayName` ([`ResendForm::Full`], the tool's preferred form);
//! - a re-sent `keyId` whose other properties differ from what Graph stores is refused with 400
//!   "Update to existing credential with KeyId '<id>' is not allowed." (users of azure-cli and
//!   Azure PowerShell quote it): the tool then sends each kept key exactly as Graph returned it in
//!   the read the plan came from ([`ResendForm::Unchanged`]: the JSON object untouched, dates in
//!   Graph's own text);
//! - only `type`, `usage` and `key` are accepted (Microsoft's CSS-Exchange scripts: "Make sure to
//!   only pass these three values, otherwise the PATCH call will fail"): the tool then sends just
//!   those ([`ResendForm::Minimal`]; `key` comes from the single-object GET selecting
//!   `keyCredentials`, the one read that returns it, docs/protocol.md §1.7), and Graph takes the
//!   certificate anew: a new `keyId`, and a window of its choosing (the certificate's validity, as
//!   when Microsoft's scripts upload without dates, §1.3).
//!
//! [`refusal`] recognises the two refusals (see its doc for the exact rule), [`ResendForm::next`]
//! picks the form to try next, [`body`] builds the array, and [`read_back`] compares what Graph
//! holds afterwards with the plan: each kept key's certificate must still be there with a valid
//! window, and every difference Graph made (a new keyId, a widened window) is reported. The
//! emulator plays each truth with `--key-resend full|unchanged|minimal`.

use super::keys::{KeyCredential, KeyIdentity, KeyPlan, graph_time};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// How kept keys are re-sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ResendForm {
    /// Every property as the tool read it (the preferred form).
    #[default]
    Full,
    /// Each key exactly as Graph returned it (the JSON object untouched).
    Unchanged,
    /// Only `type`, `usage` and `key`: Graph takes the certificate anew.
    Minimal,
}

impl std::fmt::Display for ResendForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResendForm::Full => "full",
            ResendForm::Unchanged => "unchanged",
            ResendForm::Minimal => "minimal",
        })
    }
}

/// A refusal of the way kept keys were re-sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// "Update to existing credential with KeyId '<id>' is not allowed."
    UpdateNotAllowed { key_id: Option<String> },
    /// Only `type`, `usage` and `key` may be sent for an existing credential.
    OnlyTypeUsageKey { key_id: Option<String> },
}

impl ResendForm {
    /// The form to try after `refusal`, if any is left: a refused update of a kept key is tried
    /// as Graph returned it, then with only `type`, `usage` and `key`; a refusal of anything but
    /// those three goes straight to them.
    pub fn next(self, refusal: &Refusal) -> Option<ResendForm> {
        match (self, refusal) {
            (ResendForm::Full, Refusal::UpdateNotAllowed { .. }) => Some(ResendForm::Unchanged),
            (ResendForm::Unchanged, Refusal::UpdateNotAllowed { .. }) => Some(ResendForm::Minimal),
            (ResendForm::Full | ResendForm::Unchanged, Refusal::OnlyTypeUsageKey { .. }) => {
                Some(ResendForm::Minimal)
            }
            (ResendForm::Minimal, _) => None,
        }
    }

    /// For people: how kept keys are (or were) sent.
    pub fn describe(self) -> &'static str {
        match self {
            ResendForm::Full => "with every property as read",
            ResendForm::Unchanged => "exactly as Graph returned them",
            ResendForm::Minimal => {
                "with only type, usage and key (Graph gives them a new keyId and a window of its own)"
            }
        }
    }

    /// One kept key in this form; `raw` is the key as Graph returned it, when known.
    fn kept(self, k: &KeyCredential, raw: Option<&Value>) -> Value {
        match (self, raw) {
            (ResendForm::Unchanged, Some(Value::Object(m))) => Value::Object(m.clone()),
            (ResendForm::Minimal, _) => {
                let mut m = Map::new();
                m.insert("type".into(), serde_json::json!(k.kind));
                m.insert("usage".into(), serde_json::json!(k.usage));
                m.insert("key".into(), serde_json::json!(k.key));
                Value::Object(m)
            }
            _ => serde_json::to_value(k).unwrap_or(Value::Null),
        }
    }
}

/// The first GUID in `s`, lowercased.
fn first_guid(s: &str) -> Option<String> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(35)).find_map(|i| {
        let cand = s.get(i..i + 36)?;
        uuid::Uuid::parse_str(cand)
            .ok()
            .filter(|_| cand.as_bytes()[8] == b'-')
            .map(|u| u.to_string())
    })
}

/// Whether Graph's answer refuses the way the plan's kept keys were re-sent, and how.
///
/// The rule, kept narrow so that no other error is ever taken for one (a date or usage refusal
/// must reach the admin as it is): HTTP 400; the plan keeps at least one key; when the message
/// names a keyId, it is one of the kept keys' (a refusal of the added key is not about re-sends);
/// and the message (case-insensitive) either says "update to existing credential" (the words
/// users of azure-cli and Azure PowerShell quote: [`Refusal::UpdateNotAllowed`]), or speaks of an
/// "existing credential" together with "only" or "cannot be sent", or says "type, usage and key"
/// ([`Refusal::OnlyTypeUsageKey`]; Graph's words for this case are unknown, the emulator's
/// `--key-resend minimal` says "Property 'keyId' cannot be sent for existing credential with
/// KeyId '<id>'. Send only type, usage and key.").
pub fn refusal(status: u16, message: &str, plan: &KeyPlan) -> Option<Refusal> {
    if status != 400 || plan.keep.is_empty() {
        return None;
    }
    let key_id = first_guid(message);
    if let Some(id) = &key_id
        && !plan.keep.iter().any(|k| {
            k.key_id
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case(id))
        })
    {
        return None;
    }
    let m = message.to_ascii_lowercase();
    if m.contains("update to existing credential") {
        Some(Refusal::UpdateNotAllowed { key_id })
    } else if (m.contains("existing credential")
        && (m.contains("only") || m.contains("cannot be sent")))
        || m.contains("type, usage and key")
    {
        Some(Refusal::OnlyTypeUsageKey { key_id })
    } else {
        None
    }
}

/// The `keyCredentials` array for the PATCH: the kept keys in `form` (`raw`: the keys as Graph
/// returned them in the read the plan came from, matched by keyId), then the added key with every
/// property (a new key is the tool's own: its window is the one the rules chose).
pub fn body(plan: &KeyPlan, form: ResendForm, raw: &[Value]) -> Vec<Value> {
    let raw_of = |k: &KeyCredential| {
        raw.iter().find(|r| {
            k.key_id.is_some() && r.get("keyId").and_then(Value::as_str) == k.key_id.as_deref()
        })
    };
    plan.keep
        .iter()
        .map(|k| form.kept(k, raw_of(k)))
        .chain(
            plan.added
                .iter()
                .map(|k| serde_json::to_value(k).unwrap_or(Value::Null)),
        )
        .collect()
}

/// A kept key's record, before and after, for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyState {
    pub end: Option<String>,
    pub key_id: Option<String>,
    pub start: Option<String>,
}

impl KeyState {
    fn of(k: &KeyCredential) -> KeyState {
        KeyState {
            end: k.end_date_time.map(graph_time),
            key_id: k.key_id.clone(),
            start: k.start_date_time.map(graph_time),
        }
    }
}

/// What Graph did to one kept key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptChange {
    pub after: Option<KeyState>,
    pub before: KeyState,
    /// In words: "new keyId …", "window widened …", "missing".
    pub changes: Vec<String>,
    /// The certificate is gone, or no longer has a valid window.
    pub lost: bool,
    pub thumbprint_sha1: Option<String>,
    /// The key as it was read before the PATCH.
    #[serde(skip)]
    pub before_key: KeyCredential,
    /// The key Graph holds for it now.
    #[serde(skip)]
    pub after_key: Option<KeyCredential>,
}

/// The read-back of a PATCH, compared with its plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadBack {
    /// The added key is not there, or a removed one still is: another writer's PATCH crossed.
    pub crossed: bool,
    /// Every kept key that Graph changed or lost.
    pub changes: Vec<KeptChange>,
}

impl ReadBack {
    pub fn lost(&self) -> Vec<&KeptChange> {
        self.changes.iter().filter(|c| c.lost).collect()
    }
}

type Exact = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

fn exact(k: &KeyCredential) -> Exact {
    let id = KeyIdentity::of(k);
    (
        id.thumbprint,
        k.kind.clone(),
        k.usage.clone(),
        id.start,
        id.end,
    )
}

fn same_cert(a: &KeyCredential, b: &KeyCredential) -> bool {
    a.thumbprint().is_some()
        && a.thumbprint() == b.thumbprint()
        && a.kind == b.kind
        && a.usage == b.usage
}

/// The certificate's validity, from the key's DER, when Graph returned it.
fn validity(k: &KeyCredential) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    k.certificate().map(|c| (c.not_before, c.not_after))
}

fn describe(before: &KeyCredential, after: &KeyCredential) -> Vec<String> {
    let mut out = Vec::new();
    if before.key_id != after.key_id {
        out.push(format!(
            "new keyId {} (was {})",
            after.key_id.as_deref().unwrap_or("none"),
            before.key_id.as_deref().unwrap_or("none")
        ));
    }
    let secs = |d: Option<DateTime<Utc>>| d.map(|d| d.timestamp());
    let (bs, be) = (secs(before.start_date_time), secs(before.end_date_time));
    let (as_, ae) = (secs(after.start_date_time), secs(after.end_date_time));
    if (bs, be) != (as_, ae) {
        let how = if as_ <= bs && ae >= be {
            "widened"
        } else if ae < be {
            "narrowed: it ends earlier"
        } else {
            "moved"
        };
        let show = |d: Option<DateTime<Utc>>| d.map(graph_time).unwrap_or_else(|| "?".into());
        let of_cert = match (validity(after).or_else(|| validity(before)), after) {
            (Some((nb, na)), a)
                if secs(a.start_date_time) == Some(nb.timestamp())
                    && secs(a.end_date_time) == Some(na.timestamp()) =>
            {
                " (the certificate's validity)"
            }
            _ => "",
        };
        out.push(format!(
            "window {how}: {} -> {} became {} -> {}{of_cert}",
            show(before.start_date_time),
            show(before.end_date_time),
            show(after.start_date_time),
            show(after.end_date_time),
        ));
    }
    if before.display_name != after.display_name {
        out.push(format!(
            "displayName now {:?}",
            after.display_name.as_deref().unwrap_or("")
        ));
    }
    out
}

/// Compares the keys read back after a PATCH with the plan it sent.
///
/// - `crossed`: the added key (by certificate and window, or by keyId and certificate, as Graph
///   may adjust its dates) is missing, or a removed key (certificate and window) is still there:
///   another writer's PATCH came after ours, and the caller merges again.
/// - each kept key is looked for as it was (certificate, type, usage, window); failing that, as
///   the same certificate, type and usage under another keyId or window (Graph changed it: the
///   difference is reported); failing that, or when what is left is not valid now (expired, or
///   no longer started though it was), it is `lost`.
pub fn read_back(plan: &KeyPlan, after: &[KeyCredential], now: DateTime<Utc>) -> ReadBack {
    let mut pool: Vec<&KeyCredential> = after.iter().collect();
    let mut crossed = false;
    if let Some(a) = &plan.added {
        let found = pool.iter().position(|k| exact(k) == exact(a)).or_else(|| {
            pool.iter()
                .position(|k| a.key_id.is_some() && k.key_id == a.key_id && same_cert(k, a))
        });
        match found {
            Some(i) => {
                pool.remove(i);
            }
            None => crossed = true,
        }
    }
    // Kept keys found as they were first, so that a changed one is not matched to another's.
    // A removed key still there is looked for last, among the keys no kept one accounts for:
    // Graph may take a kept key anew with the very window of a removed one (issue 28,
    // `--key-resend minimal`: both become the certificate's validity).
    let mut unmatched = Vec::new();
    for k in &plan.keep {
        match pool.iter().position(|p| exact(p) == exact(k)) {
            Some(i) => {
                pool.remove(i);
            }
            None => unmatched.push(k),
        }
    }
    let mut changes = Vec::new();
    for k in unmatched {
        let pick = pool
            .iter()
            .position(|p| same_cert(p, k) && p.key_id == k.key_id)
            .or_else(|| pool.iter().position(|p| same_cert(p, k)));
        let Some(i) = pick else {
            changes.push(KeptChange {
                after: None,
                before: KeyState::of(k),
                changes: vec!["missing after the PATCH".into()],
                lost: true,
                thumbprint_sha1: k.thumbprint(),
                before_key: (*k).clone(),
                after_key: None,
            });
            continue;
        };
        let p = pool.remove(i);
        let started_before = k.start_date_time.is_none_or(|s| s <= now);
        let valid =
            !p.is_expired(now) && (!started_before || p.start_date_time.is_none_or(|s| s <= now));
        let mut what = describe(k, p);
        if !valid {
            what.push("not valid now".into());
        }
        changes.push(KeptChange {
            after: Some(KeyState::of(p)),
            before: KeyState::of(k),
            changes: what,
            lost: !valid,
            thumbprint_sha1: k.thumbprint(),
            before_key: (*k).clone(),
            after_key: Some(p.clone()),
        });
    }
    if plan
        .removed
        .iter()
        .any(|r| pool.iter().any(|k| exact(k) == exact(r)))
    {
        crossed = true;
    }
    ReadBack { crossed, changes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use chrono::{TimeDelta, TimeZone as _};

    fn t(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    fn key(cert: &str, id: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> KeyCredential {
        KeyCredential {
            key: Some(base64::engine::general_purpose::STANDARD.encode(cert)),
            key_id: Some(id.into()),
            start_date_time: Some(start),
            end_date_time: Some(end),
            kind: Some("AsymmetricX509Cert".into()),
            usage: Some("Verify".into()),
            display_name: Some(format!("name {cert}")),
            custom_key_identifier: None,
        }
    }

    const KEPT_ID: &str = "6f1c1c0e-9f4b-4c7e-9a51-2b7a3c0d1e2f";
    const NEW_ID: &str = "0b7a2f7c-1d2e-4f3a-8b9c-0d1e2f3a4b5c";

    fn plan() -> KeyPlan {
        let now = t(2026, 11, 22);
        KeyPlan {
            keep: vec![key("kept", KEPT_ID, t(2026, 1, 1), t(2027, 1, 1))],
            dropped_expired: vec![],
            removed: vec![],
            added: Some(key("new", NEW_ID, now, t(2027, 11, 22))),
            already_present: None,
        }
    }

    #[test]
    fn refusals_are_recognised_narrowly() {
        let p = plan();
        let unchanged =
            format!("Update to existing credential with KeyId '{KEPT_ID}' is not allowed.");
        assert_eq!(
            refusal(400, &unchanged, &p),
            Some(Refusal::UpdateNotAllowed {
                key_id: Some(KEPT_ID.into())
            })
        );
        let minimal = format!(
            "Property 'keyId' cannot be sent for existing credential with KeyId '{}'. Send only type, usage and key.",
            KEPT_ID.to_ascii_uppercase()
        );
        assert_eq!(
            refusal(400, &minimal, &p),
            Some(Refusal::OnlyTypeUsageKey {
                key_id: Some(KEPT_ID.into())
            })
        );
        // Without a keyId, in other words.
        assert!(matches!(
            refusal(
                400,
                "Only type, usage and key may be sent for an existing credential.",
                &p
            ),
            Some(Refusal::OnlyTypeUsageKey { key_id: None })
        ));
        // Not a refusal of re-sent keys: another status, another error, another key, no kept key.
        assert_eq!(refusal(403, &unchanged, &p), None);
        assert_eq!(
            refusal(400, "Key credential end date is invalid.", &p),
            None
        );
        let about_new =
            format!("Update to existing credential with KeyId '{NEW_ID}' is not allowed.");
        assert_eq!(refusal(400, &about_new, &p), None);
        let mut nothing_kept = p.clone();
        nothing_kept.keep.clear();
        assert_eq!(refusal(400, &unchanged, &nothing_kept), None);
    }

    #[test]
    fn each_refusal_leads_to_the_next_form_and_minimal_is_the_last() {
        let u = Refusal::UpdateNotAllowed { key_id: None };
        let m = Refusal::OnlyTypeUsageKey { key_id: None };
        assert_eq!(ResendForm::Full.next(&u), Some(ResendForm::Unchanged));
        assert_eq!(ResendForm::Unchanged.next(&u), Some(ResendForm::Minimal));
        assert_eq!(ResendForm::Full.next(&m), Some(ResendForm::Minimal));
        assert_eq!(ResendForm::Unchanged.next(&m), Some(ResendForm::Minimal));
        assert_eq!(ResendForm::Minimal.next(&u), None);
        assert_eq!(ResendForm::Minimal.next(&m), None);
    }

    #[test]
    fn bodies_in_each_form() {
        let p = plan();
        let raw = serde_json::json!({"keyId": KEPT_ID, "startDateTime": "2026-01-01T00:00:00.0000000Z", "customKeyIdentifier": null, "key": "a2VwdA=="});
        let full = body(&p, ResendForm::Full, std::slice::from_ref(&raw));
        assert_eq!(full.len(), 2);
        assert_eq!(full[0]["keyId"], KEPT_ID);
        assert_eq!(full[0]["startDateTime"], "2026-01-01T00:00:00Z");
        assert_eq!(full[1]["keyId"], NEW_ID);
        let unchanged = body(&p, ResendForm::Unchanged, std::slice::from_ref(&raw));
        assert_eq!(
            unchanged[0], raw,
            "as Graph returned it, dates in its own text"
        );
        // No raw copy: as read.
        assert_eq!(body(&p, ResendForm::Unchanged, &[])[0], full[0]);
        let minimal = body(&p, ResendForm::Minimal, &[]);
        let keys: Vec<&String> = minimal[0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["key", "type", "usage"]);
        assert_eq!(minimal[1], full[1], "the added key always goes whole");
    }

    #[test]
    fn the_read_back_reports_what_graph_changed_and_what_it_lost() {
        let now = t(2026, 11, 22);
        let p = plan();
        let added = p.added.clone().unwrap();
        // As sent: nothing to report.
        let rb = read_back(&p, &[p.keep[0].clone(), added.clone()], now);
        assert_eq!(rb, ReadBack::default());
        // Taken anew: another keyId, a wider window.
        let mut anew = p.keep[0].clone();
        anew.key_id = Some("other".into());
        anew.start_date_time = Some(t(2025, 6, 1));
        anew.end_date_time = Some(t(2028, 6, 1));
        let rb = read_back(&p, &[anew.clone(), added.clone()], now);
        assert!(!rb.crossed && rb.lost().is_empty());
        let c = &rb.changes[0];
        assert!(c.changes[0].starts_with("new keyId other"), "{c:?}");
        assert!(c.changes[1].starts_with("window widened"), "{c:?}");
        // Narrowed, but valid: reported, not lost.
        let mut narrow = p.keep[0].clone();
        narrow.end_date_time = Some(now + TimeDelta::days(3));
        let rb = read_back(&p, &[narrow, added.clone()], now);
        assert!(rb.changes[0].changes[0].contains("narrowed"));
        assert!(rb.lost().is_empty());
        // Gone, or no longer valid: lost.
        let rb = read_back(&p, std::slice::from_ref(&added), now);
        assert!(!rb.crossed);
        assert_eq!(rb.lost().len(), 1);
        let mut expired = p.keep[0].clone();
        expired.end_date_time = Some(now - TimeDelta::days(1));
        assert_eq!(
            read_back(&p, &[expired, added.clone()], now).lost().len(),
            1
        );
        let mut later = p.keep[0].clone();
        later.start_date_time = Some(now + TimeDelta::days(1));
        assert_eq!(read_back(&p, &[later, added.clone()], now).lost().len(), 1);
        // The added key missing: another writer crossed.
        assert!(read_back(&p, std::slice::from_ref(&p.keep[0]), now).crossed);
        // The added key with dates Graph adjusted is still ours (keyId and certificate).
        let mut adjusted = added.clone();
        adjusted.end_date_time = Some(t(2027, 11, 1));
        assert!(!read_back(&p, &[p.keep[0].clone(), adjusted], now).crossed);
    }
}
