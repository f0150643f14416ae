//! What key credentials and changes to them look like, to scripts (JSON) and to people (text):
//! a listing of a service principal's keys, the plan of a change (before → after), what changed
//! on the service principal since a plan was shown, each application's result of an upload or
//! removal, and the service principal names added. Pure: `now` comes in as an argument, and
//! every value from Graph is shown escaped ([`display_safe`]).
//!
//! The JSON keys are declared in alphabetical order: that is the order in which these documents
//! have always been written (they were `serde_json::json!` maps, which sort their keys), and
//! scripts may compare them byte for byte.

use super::Outcome;
use crate::graph::keys::graph_time;
use crate::graph::{Graph, GraphError, KeyCredential, KeyIdentity, KeyPlan, ServicePrincipal};
use crate::session::keys::AppOutcomes;
use crate::session::names::NameChanges;
use crate::sts::TokenProvider;
use crate::terminal::display_safe;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One key credential for scripts.
#[derive(Debug, Serialize)]
pub struct KeyJson {
    pub days_left: Option<i64>,
    pub display_name: Option<String>,
    /// RFC 3339 in UTC, with the fraction of a second when there is one, as Graph has it.
    pub end: Option<String>,
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
    s
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
    /// Reads the service principal of `app`, and the tenant id from an admin token.
    pub async fn read(
        graph: &Graph<'_>,
        tokens: &TokenProvider,
        scope: &str,
        tenant: &str,
        app: &str,
        now: DateTime<Utc>,
    ) -> Result<KeyListing, GraphError> {
        let id = graph.find_service_principal(app).await?;
        let sp = graph.read_service_principal(&id).await?;
        let tid = tokens
            .token(scope)
            .await
            .ok()
            .and_then(|t| crate::sts::unverified_claim(t.expose(), "tid"));
        Ok(KeyListing::new(tenant, app, &sp, tid, now))
    }

    pub fn new(
        tenant: &str,
        app: &str,
        sp: &ServicePrincipal,
        tenant_id: Option<String>,
        now: DateTime<Utc>,
    ) -> KeyListing {
        KeyListing {
            app_id: app.to_string(),
            credentials: sp
                .key_credentials
                .iter()
                .map(|k| KeyJson::of(k, now))
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
    pub kept: Vec<String>,
    pub key_id: Option<String>,
    pub removed: Vec<String>,
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
        AppResult {
            action,
            app_id: app_id.to_string(),
            attempts,
            dropped_expired: tps(&plan.dropped_expired),
            end: key.and_then(|k| k.end_date_time).map(graph_time),
            kept: tps(&plan.keep),
            key_id: key.and_then(|k| k.key_id.clone()),
            removed: tps(&plan.removed),
            service_principal_id: sp.id.clone(),
            start: key.and_then(|k| k.start_date_time).map(graph_time),
            thumbprint_sha1: thumb,
        }
    }
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
                    ..
                } => {
                    s.push_str(&plan_text(after, plan, self.now));
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
            now,
        );
        as_json_macro_wrote_it(&l);
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
        let empty = KeyListing::new("c.com", "app", &sp(vec![]), Some("tid".into()), now);
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
        assert_eq!(verbs, ["keep", "drop", "add"], "{text}");
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
