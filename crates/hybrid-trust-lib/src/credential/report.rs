//! What key credentials and changes to them look like, to scripts (JSON) and to people (text):
//! a listing of a service principal's keys, the plan of a change (before → after), what changed
//! on the service principal since a plan was shown, each application's result of an upload or
//! removal, and the service principal names added. Pure: `now` comes in as an argument, and
//! every value from Graph is shown escaped ([`display_safe`]).
//!
//! The JSON keys are declared in alphabetical order: that is the order in which these documents
//! have always been written (they were `serde_json::json!` maps, which sort their keys), and
//! scripts may compare them byte for byte.

use super::{Outcome, Resend};
use crate::graph::keys::graph_time;
use crate::graph::resend::{KeptChange, ResendForm};
use crate::graph::{KeyCredential, KeyIdentity, KeyPlan, ServicePrincipal};
use crate::ledger::TenantRecord;
use crate::session::keys::AppOutcomes;
use crate::session::names::NameChanges;
use crate::terminal::display_safe;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One key credential for scripts.
#[derive(Debug, Serialize)]
pub struct KeyJson {
    /// `credential list`: a key hybrid-trust uploaded from another host (its display name says
    /// so) that this host's ledger does not know ([`super::foreign::Origin::AnotherHost`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub another_host: Option<bool>,
    pub days_left: Option<i64>,
    pub display_name: Option<String>,
    /// RFC 3339 in UTC, with the fraction of a second when there is one, as Graph has it.
    pub end: Option<String>,
    /// `credential list`: a key this host's ledger did not put there
    /// ([`super::foreign::is_foreign`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign: Option<bool>,
    pub key_id: Option<String>,
    pub start: Option<String>,
    pub thumbprint_sha1: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub usage: Option<String>,
}

impl KeyJson {
    pub fn of(k: &KeyCredential, now: DateTime<Utc>) -> KeyJson {
        KeyJson {
            days_left: k.end_date_time.map(|e| (e - now).num_days()),
            display_name: k.display_name.clone(),
            end: k.end_date_time.map(graph_time),
            foreign: None,
            another_host: None,
            key_id: k.key_id.clone(),
            start: k.start_date_time.map(graph_time),
            thumbprint_sha1: k.thumbprint(),
            kind: k.kind.clone(),
            usage: k.usage.clone(),
        }
    }
}

fn key_line(verb: &str, k: &KeyCredential, now: DateTime<Utc>) -> String {
    let j = KeyJson::of(k, now);
    format!(
        "  {verb:<7} {}  {} -> {}  {}\n",
        j.thumbprint_sha1
            .as_deref()
            .unwrap_or("(unknown thumbprint)"),
        j.start.as_deref().unwrap_or("?"),
        j.end.as_deref().unwrap_or("?"),
        display_safe(j.display_name.as_deref().unwrap_or(""))
    )
}

/// The plan for people: before → after.
pub fn plan_text(sp: &ServicePrincipal, plan: &KeyPlan, now: DateTime<Utc>) -> String {
    let mut s = format!(
        "Service principal {} ({}, object id {}):\n",
        sp.app_id,
        display_safe(sp.display_name.as_deref().unwrap_or("?")),
        sp.id
    );
    let lines = [
        ("keep", plan.keep.iter().collect::<Vec<_>>()),
        ("drop", plan.dropped_expired.iter().collect()),
        ("remove", plan.removed.iter().collect()),
        ("add", plan.added.iter().collect()),
        ("present", plan.already_present.iter().collect()),
    ];
    for (verb, keys) in lines {
        for k in keys {
            s.push_str(&key_line(verb, k, now));
        }
    }
    if !plan.keep.is_empty() && plan.changes() {
        s.push_str(RESEND_NOTE);
    }
    s
}

/// How kept keys will be re-sent, for the plan (docs/protocol.md §6 item 9 is unconfirmed).
pub const RESEND_NOTE: &str = "  (kept keys are re-sent with every property as read; should Graph refuse that, exactly as it returned them, then with only type, usage and key, in which case Graph may give them a new keyId and a window of its own: the result says what it changed)\n";

/// What a confirmation shows: what changed since the plan shown before (if one was), then the plan.
pub fn confirm_text(
    sp: &ServicePrincipal,
    plan: &KeyPlan,
    shown: Option<&KeyPlan>,
    now: DateTime<Utc>,
) -> String {
    let before = shown.map(|prev| difference_text(sp, prev, plan, now));
    before.unwrap_or_default() + &plan_text(sp, plan, now)
}

/// What changed on the service principal between the read a plan was shown from and a later one.
pub fn difference_text(
    sp: &ServicePrincipal,
    shown: &KeyPlan,
    now_plan: &KeyPlan,
    now: DateTime<Utc>,
) -> String {
    let before = shown.read_keys();
    let after = now_plan.read_keys();
    let has = |ks: &[&KeyCredential], k: &KeyCredential| {
        ks.iter()
            .any(|o| KeyIdentity::of(o).same_window(&KeyIdentity::of(k)) && o.usage == k.usage)
    };
    let mut s = format!(
        "The keys of {} changed since the plan was shown (another admin or host?):\n",
        sp.app_id
    );
    for k in after.iter().filter(|k| !has(&before, k)) {
        s.push_str(&key_line("new", k, now));
    }
    for k in before.iter().filter(|k| !has(&after, k)) {
        s.push_str(&key_line("gone", k, now));
    }
    s.push_str("The plan as the keys are now:\n");
    s
}

/// `credential list`: the keys of one application's service principal.
#[derive(Debug, Serialize)]
pub struct KeyListing {
    pub app_id: String,
    pub credentials: Vec<KeyJson>,
    pub service_principal_id: String,
    pub tenant_id: Option<String>,
    /// The tenant as the user named it, shown when the token names no tenant id.
    #[serde(skip)]
    pub tenant: String,
    #[serde(skip)]
    pub display_name: Option<String>,
}

impl KeyListing {
    /// The listing of `sp`, each key marked foreign or not against the tenant's ledger record.
    pub fn new(
        tenant: &str,
        app: &str,
        sp: &ServicePrincipal,
        tenant_id: Option<String>,
        rec: Option<&TenantRecord>,
        now: DateTime<Utc>,
    ) -> KeyListing {
        KeyListing {
            app_id: app.to_string(),
            credentials: sp
                .key_credentials
                .iter()
                .map(|k| {
                    let origin = super::foreign::origin(rec, app, k);
                    KeyJson {
                        foreign: Some(origin == super::foreign::Origin::Foreign),
                        another_host: Some(origin == super::foreign::Origin::AnotherHost),
                        ..KeyJson::of(k, now)
                    }
                })
                .collect(),
            service_principal_id: sp.id.clone(),
            tenant_id,
            tenant: tenant.to_string(),
            display_name: sp.display_name.clone(),
        }
    }

    pub fn text(&self) -> String {
        let mut s = format!(
            "Service principal {} ({}) in tenant {}:\n",
            self.app_id,
            display_safe(self.display_name.as_deref().unwrap_or("?")),
            self.tenant_id.as_deref().unwrap_or(&self.tenant)
        );
        if self.credentials.is_empty() {
            s.push_str("  no key credentials\n");
        }
        for j in &self.credentials {
            s.push_str(&format!(
                "  {}  {} {}  {} -> {} ({} days left)  {}\n",
                j.thumbprint_sha1.as_deref().unwrap_or("(unknown)"),
                display_safe(j.kind.as_deref().unwrap_or("?")),
                display_safe(j.usage.as_deref().unwrap_or("?")),
                j.start.as_deref().unwrap_or("?"),
                j.end.as_deref().unwrap_or("?"),
                j.days_left.map_or("?".into(), |d| d.to_string()),
                display_safe(j.display_name.as_deref().unwrap_or(""))
            ));
            if j.foreign == Some(true) {
                s.push_str("      FOREIGN: not put there by this host's ledger; whoever holds its private key can act as this application (credential prune --foreign removes it)\n");
            }
            if j.another_host == Some(true) {
                s.push_str("      ANOTHER HOST: uploaded by hybrid-trust on another admin host, unknown to this ledger; the Front Ends may sign with it, so prune keeps it (credential remove --thumbprint removes it)\n");
            }
        }
        s
    }
}

/// One application's result of an upload or removal.
#[derive(Debug, Serialize)]
pub struct AppResult {
    pub action: &'static str,
    pub app_id: String,
    pub attempts: u32,
    pub dropped_expired: Vec<String>,
    pub end: Option<String>,
    /// Kept keys Graph changed when it took them back (a new keyId, another window).
    pub graph_changed: Vec<KeptChange>,
    pub kept: Vec<String>,
    pub key_id: Option<String>,
    pub removed: Vec<String>,
    /// How kept keys were re-sent (`full`, `unchanged`, `minimal`), when something was applied.
    pub resend: Option<ResendForm>,
    /// Graph's refusals of earlier re-send forms: `{"form","message"}`.
    pub resend_refused: Vec<RefusedJson>,
    pub service_principal_id: String,
    pub start: Option<String>,
    pub thumbprint_sha1: Option<String>,
}

impl AppResult {
    pub fn of(app_id: &str, outcome: &Outcome, thumb: Option<String>) -> AppResult {
        let (plan, sp, action, attempts) = match outcome {
            Outcome::Unchanged { plan, sp } => (
                plan,
                sp,
                if plan.already_present.is_some() {
                    "already-present"
                } else {
                    "unchanged"
                },
                0,
            ),
            Outcome::Planned { plan, sp } => (plan, sp, "dry-run", 0),
            Outcome::Applied {
                plan,
                after,
                attempts,
                ..
            } => (plan, after, "applied", *attempts),
        };
        let tps = |ks: &[KeyCredential]| {
            ks.iter()
                .filter_map(KeyCredential::thumbprint)
                .collect::<Vec<_>>()
        };
        let key = plan.added.as_ref().or(plan.already_present.as_ref());
        let resend = match outcome {
            Outcome::Applied { resend, .. } => Some(resend),
            _ => None,
        };
        AppResult {
            action,
            app_id: app_id.to_string(),
            attempts,
            dropped_expired: tps(&plan.dropped_expired),
            end: key.and_then(|k| k.end_date_time).map(graph_time),
            graph_changed: resend.map(|r| r.changed.clone()).unwrap_or_default(),
            kept: tps(&plan.keep),
            key_id: key.and_then(|k| k.key_id.clone()),
            removed: tps(&plan.removed),
            resend: resend.map(|r| r.form),
            resend_refused: resend
                .map(|r| {
                    r.refused
                        .iter()
                        .map(|(form, message)| RefusedJson {
                            form: *form,
                            message: message.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            service_principal_id: sp.id.clone(),
            start: key.and_then(|k| k.start_date_time).map(graph_time),
            thumbprint_sha1: thumb,
        }
    }
}

/// A re-send form Graph refused, and its words.
#[derive(Debug, Serialize)]
pub struct RefusedJson {
    pub form: ResendForm,
    pub message: String,
}

/// `credential upload` / `credential remove`: what each application's change came to.
#[derive(Debug, Serialize)]
pub struct KeyChanges {
    pub audit_log: String,
    pub dry_run: bool,
    pub results: Vec<AppResult>,
    pub tenant: String,
    pub tenant_id: Option<String>,
    #[serde(skip)]
    outcomes: AppOutcomes,
    #[serde(skip)]
    now: DateTime<Utc>,
}

impl KeyChanges {
    /// `thumb`: the certificate's thumbprint, shown in every result.
    pub fn new(
        tenant: &str,
        tenant_id: Option<String>,
        dry_run: bool,
        audit_log: &std::path::Path,
        outcomes: AppOutcomes,
        thumb: Option<String>,
        now: DateTime<Utc>,
    ) -> KeyChanges {
        KeyChanges {
            audit_log: audit_log.display().to_string(),
            dry_run,
            results: outcomes
                .iter()
                .map(|(a, o)| AppResult::of(a, o, thumb.clone()))
                .collect(),
            tenant: tenant.to_string(),
            tenant_id,
            outcomes,
            now,
        }
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        for (app, o) in &self.outcomes {
            match o {
                Outcome::Unchanged { plan, .. } if plan.already_present.is_some() => s.push_str(
                    &format!("{app}: the certificate is already there; nothing changed\n"),
                ),
                Outcome::Unchanged { .. } => s.push_str(&format!("{app}: nothing to change\n")),
                Outcome::Planned { plan, sp } => s.push_str(&format!(
                    "{}dry run: nothing was changed\n",
                    plan_text(sp, plan, self.now)
                )),
                Outcome::Applied {
                    plan,
                    after,
                    attempts,
                    resend,
                    ..
                } => {
                    s.push_str(&plan_text(after, plan, self.now));
                    s.push_str(&resend_text(app, resend));
                    s.push_str(&format!(
                        "{app}: applied and verified by reading back{}\n",
                        if *attempts > 1 {
                            format!(
                                " (merged again {} time(s) after a concurrent change)",
                                attempts - 1
                            )
                        } else {
                            String::new()
                        }
                    ));
                }
            }
        }
        s
    }
}

/// What the re-send of kept keys met: Graph's refusals, the form it accepted, what it changed.
pub fn resend_text(app: &str, r: &Resend) -> String {
    let mut s = String::new();
    for (form, message) in &r.refused {
        s.push_str(&format!(
            "{app}: Graph refused the kept keys re-sent {form}: {}\n",
            display_safe(message)
        ));
    }
    if !r.refused.is_empty() {
        s.push_str(&format!(
            "{app}: kept keys re-sent {}: {}\n",
            r.form,
            r.form.describe()
        ));
    }
    for c in &r.changed {
        s.push_str(&format!(
            "{app}: Graph changed kept key {}\n",
            display_safe(&super::change_line(c))
        ));
    }
    s
}

/// The confirmation (or the dry run's note) for creating a missing service principal.
pub fn create_text(app: &str, dry_run: bool) -> String {
    format!(
        "The tenant has no service principal for application {app}: {} (POST /servicePrincipals {{\"appId\": \"{app}\"}}, as Microsoft's scripts do with New-MgServicePrincipal -AppId)",
        if dry_run {
            "it would be created (dry run)"
        } else {
            "it will be created"
        }
    )
}

/// The names a service principal will have, for the confirmation.
pub fn names_plan_text(sp: &ServicePrincipal, names: &[String]) -> String {
    format!(
        "Service principal names of {} will be:\n  {}",
        sp.app_id,
        names.join("\n  ")
    )
}

/// `spn add`: the names added, already there, or planned.
#[derive(Debug, Serialize)]
pub struct NameReport {
    pub added: Vec<String>,
    pub already_present: Vec<String>,
    pub app_id: &'static str,
    pub dry_run: bool,
    pub planned: Vec<String>,
    pub service_principal_names: Vec<String>,
    pub tenant: String,
}

impl NameReport {
    pub fn new(tenant: &str, dry_run: bool, c: NameChanges) -> NameReport {
        NameReport {
            added: c.added,
            already_present: c.present,
            app_id: crate::microsoft::SFB_APP_ID,
            dry_run,
            planned: c.planned,
            service_principal_names: c.names_now,
            tenant: tenant.to_string(),
        }
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.added {
            s.push_str(&format!("added {n}\n"));
        }
        for n in &self.already_present {
            s.push_str(&format!("already present: {n}\n"));
        }
        for n in &self.planned {
            s.push_str(&format!("would add (dry run, nothing changed): {n}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    /// The document as these were written before they were types: a `json!` map, keys sorted.
    fn as_json_macro_wrote_it<T: Serialize>(v: &T) {
        let direct = serde_json::to_string_pretty(v).unwrap();
        let sorted = serde_json::to_string_pretty(&serde_json::to_value(v).unwrap()).unwrap();
        assert_eq!(direct, sorted);
    }

    fn key(tp_byte: u8, start: DateTime<Utc>, end: DateTime<Utc>, name: &str) -> KeyCredential {
        serde_json::from_value(serde_json::json!({
            "keyId": format!("00000000-0000-0000-0000-0000000000{tp_byte:02x}"),
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "key": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [tp_byte; 32]),
            "startDateTime": graph_time(start),
            "endDateTime": graph_time(end),
            "displayName": name,
        }))
        .unwrap()
    }

    fn sp(keys: Vec<KeyCredential>) -> ServicePrincipal {
        serde_json::from_value(serde_json::json!({
            "id": "sp-object-id",
            "appId": crate::microsoft::SFB_APP_ID,
            "displayName": "Skype\u{1b}[2J for Business Online",
        }))
        .map(|mut s: ServicePrincipal| {
            s.key_credentials = keys;
            s
        })
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2027-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_listing_is_written_as_before_and_escapes_names() {
        let now = now();
        let k = key(0xab, now, now + TimeDelta::days(30), "CN=sfb\ncontoso");
        let l = KeyListing::new(
            "contoso.com",
            crate::microsoft::SFB_APP_ID,
            &sp(vec![k]),
            None,
            None,
            now,
        );
        as_json_macro_wrote_it(&l);
        assert_eq!(
            serde_json::to_value(&l).unwrap()["credentials"][0]["foreign"],
            true,
            "no ledger record: nothing shows the tool put it there"
        );
        assert!(l.text().contains("      FOREIGN: not put there"));
        let json = serde_json::to_value(&l).unwrap();
        assert_eq!(json["credentials"][0]["type"], "AsymmetricX509Cert");
        assert_eq!(json["credentials"][0]["days_left"], 30);
        assert_eq!(json["credentials"][0]["start"], "2027-01-01T00:00:00Z");
        assert!(json.get("tenant").is_none() && json.get("display_name").is_none());
        let text = l.text();
        assert!(text.contains("in tenant contoso.com:\n"), "{text}");
        assert!(text.contains("Skype\\x1b[2J for"), "{text}");
        assert!(
            text.contains("(30 days left)  CN=sfb\\ncontoso\n"),
            "{text}"
        );
        let empty = KeyListing::new("c.com", "app", &sp(vec![]), Some("tid".into()), None, now);
        assert!(
            empty
                .text()
                .ends_with("in tenant tid:\n  no key credentials\n")
        );
    }

    #[test]
    fn plans_results_and_differences_read_as_before() {
        let now = now();
        let old = key(
            0x01,
            now - TimeDelta::days(400),
            now - TimeDelta::days(1),
            "old",
        );
        let kept = key(0x02, now, now + TimeDelta::days(10), "kept");
        let new = key(0x03, now, now + TimeDelta::days(365), "new");
        let shown =
            crate::graph::plan_upload(&[old.clone(), kept.clone()], new.clone(), now).unwrap();
        let text = plan_text(&sp(vec![]), &shown, now);
        let verbs: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(verbs, ["keep", "drop", "add", "(kept"], "{text}");
        assert!(
            text.ends_with(RESEND_NOTE),
            "the plan says how kept keys go"
        );
        assert!(
            text.starts_with(
                "Service principal 00000004-0000-0ff1-ce00-000000000000 (Skype\\x1b[2J"
            )
        );

        // Another admin removed the kept key meanwhile: the difference names it gone.
        let now_plan = crate::graph::plan_upload(&[old], new, now).unwrap();
        assert!(now_plan.keep.is_empty());
        let diff = difference_text(&sp(vec![]), &shown, &now_plan, now);
        let gone = format!("  gone    {}  ", kept.thumbprint().unwrap());
        assert!(diff.contains(&gone), "{diff}");
        assert!(!diff.contains("  new "), "{diff}");

        let outcome = Outcome::Planned {
            plan: shown,
            sp: sp(vec![]),
        };
        let r = AppResult::of("app", &outcome, None);
        assert_eq!(r.action, "dry-run");
        assert_eq!(r.kept, [kept.thumbprint().unwrap()]);
        assert_eq!(r.dropped_expired.len(), 1);
        assert_eq!(r.end.as_deref(), Some("2028-01-01T00:00:00Z"));
        let changes = KeyChanges::new(
            "contoso.com",
            None,
            true,
            std::path::Path::new("/state/audit.jsonl"),
            vec![("app".into(), outcome)],
            None,
            now,
        );
        as_json_macro_wrote_it(&changes);
        assert!(changes.text().ends_with("dry run: nothing was changed\n"));
    }

    #[test]
    fn names_are_reported_as_before() {
        let r = NameReport::new(
            "contoso.com",
            false,
            NameChanges {
                added: vec!["a".into()],
                present: vec!["b".into()],
                planned: vec![],
                names_now: vec!["a".into(), "b".into()],
            },
        );
        as_json_macro_wrote_it(&r);
        assert_eq!(r.text(), "added a\nalready present: b\n");
        assert_eq!(
            names_plan_text(&sp(vec![]), &["a".into(), "b".into()]),
            "Service principal names of 00000004-0000-0ff1-ce00-000000000000 will be:\n  a\n  b"
        );
    }
}
