//! App management policies (Microsoft Graph v1.0): the tenant default
//! (`GET|PATCH /policies/defaultAppManagementPolicy`, GDC `tenantAppManagementPolicy`), policies of
//! their own (`/policies/appManagementPolicies`, assigned to an application with
//! `POST /applications/{id}/appManagementPolicies/$ref`, read with
//! `GET /applications/{id}/appManagementPolicies`), and the key-lifetime cap they put on new key
//! credentials (`asymmetricKeyLifetime`, `maxLifetime` an ISO 8601 duration,
//! `restrictForAppsCreatedAfterDateTime`, `state`).
//!
//! An assigned policy overrides the tenant default for its object ("This policy applies to all
//! apps and service principals unless overridden when an appManagementPolicy is applied to the
//! object", GDC `tenantAppManagementPolicy`). A key longer than the cap is refused with Graph's
//! words (`CredentialInvalidLifetimeAsPerAppPolicy`, "Credential lifetime exceeds the max value
//! allowed as per assigned policy '<id>'.", detail `InvalidKeyEndDate` on `EndDate`, as users
//! quote it for password credentials; the same code for key credentials is [S]). What the cap
//! measures is [U] (docs/protocol.md §5.5): [`KeyLifetimeRule`] gives a mode for each reading.

use super::errors::GraphError;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// The id Graph gives the tenant default policy (GDC `tenantappmanagementpolicy-get`).
pub const DEFAULT_POLICY_ID: &str = "00000000-0000-0000-0000-000000000000";

/// [U] What `asymmetricKeyLifetime` measures (`--key-lifetime`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyLifetimeRule {
    /// The key's own window, `endDateTime - startDateTime` (default): a key whose dates are
    /// set within the cap passes, even for a five-year certificate.
    #[default]
    Window,
    /// From the key's creation: `endDateTime - now` ("the maximum duration … from the date of
    /// key creation", Learn keyCredentialConfiguration, beta): a key uploaded ahead counts its
    /// wait too.
    FromCreation,
    /// The key's window and also the certificate's own validity (`notAfter - notBefore`): a
    /// five-year certificate cannot be uploaded at all under a 365-day cap (the fix is a shorter
    /// certificate, MEAC `-CustomCertificateLifetimeInDays`).
    Certificate,
}

impl std::str::FromStr for KeyLifetimeRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "window" => Ok(Self::Window),
            "from-creation" => Ok(Self::FromCreation),
            "certificate" => Ok(Self::Certificate),
            _ => Err(format!(
                "{s:?} is not one of window, from-creation, certificate"
            )),
        }
    }
}

/// A custom `appManagementPolicy` and the objects it is assigned to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CustomPolicy {
    pub id: Uuid,
    /// The policy as Graph renders it, without `id` (`displayName`, `description`, `isEnabled`,
    /// `restrictions`).
    pub doc: Map<String, Value>,
    /// Object ids (applications or service principals) the policy applies to.
    pub applies_to: Vec<Uuid>,
}

/// A tenant's app management policies.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppPolicies {
    /// The tenant default as Graph renders it, without `@odata.context` and `id`.
    pub default: Map<String, Value>,
    #[serde(default)]
    pub custom: Vec<CustomPolicy>,
}

impl Default for AppPolicies {
    fn default() -> Self {
        let Value::Object(default) = json!({
            "displayName": "Default app management tenant policy",
            "description": "Default tenant policy that enforces app management restrictions on applications and service principals. To apply policy to targeted resources, create a new policy under appManagementPolicies collection.",
            "isEnabled": false,
            "applicationRestrictions": {"passwordCredentials": [], "keyCredentials": []},
            "servicePrincipalRestrictions": {"passwordCredentials": [], "keyCredentials": []},
        }) else {
            unreachable!("a JSON object literal")
        };
        AppPolicies {
            default,
            custom: Vec::new(),
        }
    }
}

/// The cap on new keys of one object, and the policy that sets it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyCap {
    pub max: TimeDelta,
    pub policy_id: String,
}

/// Which restrictions of the default policy apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Application,
    ServicePrincipal,
}

impl AppPolicies {
    /// The control API's `{"max_key_lifetime_days": N | null}`: the default policy caps keys of
    /// applications and service principals created since 2015 (every object of the emulator) at
    /// N days, or no longer caps them.
    pub fn set_key_lifetime_days(&mut self, days: Option<u32>) {
        let keys = match days {
            Some(d) => json!([{
                "restrictionType": "asymmetricKeyLifetime",
                "maxLifetime": format!("P{d}D"),
                "restrictForAppsCreatedAfterDateTime": "2015-01-01T00:00:00Z",
                "state": "enabled",
            }]),
            None => json!([]),
        };
        for side in ["applicationRestrictions", "servicePrincipalRestrictions"] {
            let entry = self
                .default
                .entry(side)
                .or_insert_with(|| json!({"passwordCredentials": []}));
            if !entry.is_object() {
                *entry = json!({"passwordCredentials": []});
            }
            if let Some(o) = entry.as_object_mut() {
                o.insert("keyCredentials".into(), keys.clone());
            }
        }
        if days.is_some() {
            self.default.insert("isEnabled".into(), json!(true));
        }
    }

    /// The cap on new keys of an object (`id`, created at `created`): an enabled policy assigned
    /// to it, else the enabled tenant default's restrictions for its kind.
    pub fn cap(&self, kind: ObjectKind, id: Uuid, created: DateTime<Utc>) -> Option<KeyCap> {
        let enabled = |doc: &Map<String, Value>| doc.get("isEnabled") != Some(&json!(false));
        if let Some(p) = self.custom.iter().find(|p| p.applies_to.contains(&id)) {
            // An assigned policy overrides the default, whether or not it caps keys.
            if !enabled(&p.doc) {
                return None;
            }
            return key_restriction(p.doc.get("restrictions")?, created).map(|max| KeyCap {
                max,
                policy_id: p.id.to_string(),
            });
        }
        if self.default.get("isEnabled") != Some(&json!(true)) {
            return None;
        }
        let side = match kind {
            ObjectKind::Application => "applicationRestrictions",
            ObjectKind::ServicePrincipal => "servicePrincipalRestrictions",
        };
        key_restriction(self.default.get(side)?, created).map(|max| KeyCap {
            max,
            policy_id: DEFAULT_POLICY_ID.to_string(),
        })
    }

    /// The policies assigned to an object, as Graph renders them.
    pub fn assigned_to(&self, id: Uuid) -> Vec<Value> {
        self.custom
            .iter()
            .filter(|p| p.applies_to.contains(&id))
            .map(render_custom)
            .collect()
    }
}

pub fn render_custom(p: &CustomPolicy) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(p.id.to_string()));
    m.extend(p.doc.clone());
    Value::Object(m)
}

/// The enabled `asymmetricKeyLifetime` of a restrictions object that applies to an object
/// created at `created`.
fn key_restriction(restrictions: &Value, created: DateTime<Utc>) -> Option<TimeDelta> {
    restrictions
        .get("keyCredentials")?
        .as_array()?
        .iter()
        .filter(|r| r["restrictionType"] == "asymmetricKeyLifetime")
        .filter(|r| r["state"] != "disabled")
        .filter(|r| {
            r["restrictForAppsCreatedAfterDateTime"]
                .as_str()
                .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
                .is_none_or(|after| created > after.with_timezone(&Utc))
        })
        .filter_map(|r| r["maxLifetime"].as_str().and_then(parse_duration))
        .min()
}

/// An ISO 8601 duration as Graph's Edm.Duration takes it (`P365D`, `P1Y`, `P4DT12H30M5S`);
/// a year counts 365 days and a month 30 (how Entra counts them is [U]).
pub fn parse_duration(s: &str) -> Option<TimeDelta> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = TimeDelta::zero();
    let mut any = false;
    let mut take = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let secs = units.iter().find(|(u, _)| *u == c)?.1;
            let n: i64 = num.parse().ok()?;
            total = total.checked_add(&TimeDelta::try_seconds(n.checked_mul(secs)?)?)?;
            num.clear();
            any = true;
        }
        num.is_empty().then_some(())
    };
    const DAY: i64 = 86_400;
    take(
        date,
        &[
            ('Y', 365 * DAY),
            ('M', 30 * DAY),
            ('W', 7 * DAY),
            ('D', DAY),
        ],
    )?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        take(t, &[('H', 3600), ('M', 60), ('S', 1)])?;
    }
    any.then_some(total)
}

/// Graph's refusal of a key longer than the policy allows.
pub fn lifetime_refusal(cap: &KeyCap) -> GraphError {
    let msg = format!(
        "Credential lifetime exceeds the max value allowed as per assigned policy '{}'.",
        cap.policy_id
    );
    let mut e = GraphError::bad_request("CredentialInvalidLifetimeAsPerAppPolicy", msg.clone());
    e.details = Some(json!([{"code": "InvalidKeyEndDate", "message": msg, "target": "EndDate"}]));
    e
}

/// Whether a new key (`start`..`end`, its certificate valid `not_before`..`not_after`) is
/// longer than the cap under `rule`.
pub fn exceeds(
    cap: &KeyCap,
    rule: KeyLifetimeRule,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    (not_before, not_after): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> bool {
    match rule {
        KeyLifetimeRule::Window => end - start > cap.max,
        KeyLifetimeRule::FromCreation => end - now > cap.max,
        KeyLifetimeRule::Certificate => end - start > cap.max || not_after - not_before > cap.max,
    }
}

/// Validates a PATCH of a policy's restrictions: each key restriction needs a known
/// `restrictionType`, a parseable `maxLifetime` for the lifetime type, and a valid date.
pub fn validate_restrictions(v: &Value, what: &str) -> Result<(), GraphError> {
    let bad = |m: String| GraphError::bad_request("Request_BadRequest", m);
    let Some(o) = v.as_object() else {
        return Err(bad(format!("{what} must be an object.")));
    };
    for (k, list) in o {
        if k.contains('@') {
            continue;
        }
        if !matches!(k.as_str(), "passwordCredentials" | "keyCredentials") {
            return Err(bad(format!(
                "The property '{k}' does not exist on type 'microsoft.graph.appManagementConfiguration'."
            )));
        }
        let Some(items) = list.as_array() else {
            return Err(bad(format!("{k} must be an array.")));
        };
        let mut seen = Vec::new();
        for r in items {
            let t = r["restrictionType"].as_str().unwrap_or("");
            let known: &[&str] = if k == "keyCredentials" {
                &["asymmetricKeyLifetime", "trustedCertificateAuthority"]
            } else {
                &[
                    "passwordAddition",
                    "passwordLifetime",
                    "symmetricKeyAddition",
                    "symmetricKeyLifetime",
                    "customPasswordAddition",
                ]
            };
            if !known.contains(&t) {
                return Err(bad(format!("Invalid restrictionType '{t}' in {k}.")));
            }
            if seen.contains(&t) {
                return Err(bad(format!(
                    "Each restrictionType can be used only once per policy: '{t}'."
                )));
            }
            seen.push(t);
            if t.ends_with("Lifetime")
                && r["maxLifetime"].as_str().and_then(parse_duration).is_none()
            {
                return Err(bad(format!(
                    "maxLifetime is required for restrictionType '{t}' and must be an ISO 8601 duration."
                )));
            }
            if let Some(d) = r.get("restrictForAppsCreatedAfterDateTime")
                && !d.is_null()
                && d.as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .is_none()
            {
                return Err(bad(
                    "restrictForAppsCreatedAfterDateTime must be a DateTimeOffset.".to_string(),
                ));
            }
        }
    }
    Ok(())
}

/// A restriction list entry as Graph renders it (every property, nulls included).
pub fn render_restrictions(v: &Value) -> Value {
    let mut out = Map::new();
    for side in ["passwordCredentials", "keyCredentials"] {
        let items: Vec<Value> = v[side]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        json!({
                            "restrictionType": r["restrictionType"],
                            "state": r.get("state").cloned().filter(|s| !s.is_null()).unwrap_or(json!("enabled")),
                            "maxLifetime": r.get("maxLifetime").cloned().unwrap_or(Value::Null),
                            "restrictForAppsCreatedAfterDateTime": r.get("restrictForAppsCreatedAfterDateTime").cloned().unwrap_or(Value::Null),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.insert(side.into(), Value::Array(items));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("P365D"), Some(TimeDelta::days(365)));
        assert_eq!(parse_duration("P1Y"), Some(TimeDelta::days(365)));
        assert_eq!(
            parse_duration("P4DT12H30M5S"),
            Some(TimeDelta::seconds(4 * 86_400 + 12 * 3600 + 30 * 60 + 5))
        );
        for bad in ["", "P", "365D", "PT", "P1X", "P1", "PD"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn assigned_policy_overrides_the_default() {
        let mut p = AppPolicies::default();
        let now = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let app = Uuid::new_v4();
        assert_eq!(p.cap(ObjectKind::Application, app, now), None);
        p.set_key_lifetime_days(Some(365));
        assert_eq!(
            p.cap(ObjectKind::Application, app, now).unwrap().max,
            TimeDelta::days(365)
        );
        let Value::Object(doc) = json!({"isEnabled": true, "restrictions": {"keyCredentials": [
            {"restrictionType": "asymmetricKeyLifetime", "maxLifetime": "P90D"}]}})
        else {
            unreachable!()
        };
        let id = Uuid::new_v4();
        p.custom.push(CustomPolicy {
            id,
            doc,
            applies_to: vec![app],
        });
        let cap = p.cap(ObjectKind::Application, app, now).unwrap();
        assert_eq!(
            (cap.max, cap.policy_id),
            (TimeDelta::days(90), id.to_string())
        );
        // Objects created before the restriction's date are not capped.
        p.custom.clear();
        let old = DateTime::parse_from_rfc3339("2014-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(p.cap(ObjectKind::ServicePrincipal, app, old), None);
    }
}
