//! Key-lifetime caps from a tenant's app management policies (docs/protocol.md §5.5): the
//! default policy (`GET /policies/defaultAppManagementPolicy`, `applicationRestrictions` and
//! `servicePrincipalRestrictions`) and an application's own (`GET
//! /applications/{id}/appManagementPolicies`), which overrides the default for that application.
//! The cap is learnt from the policy, not from a refused PATCH. Reading policies needs
//! `Policy.Read.All` (a 403 otherwise: the caller decides what an unknown cap means).

use super::applications::Application;
use super::client::{Graph, GraphError};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

/// Where a cap comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapSource {
    /// The tenant default policy (`00000000-0000-0000-0000-000000000000`).
    TenantDefault,
    /// A policy assigned to the application itself.
    AppPolicy {
        id: String,
        display_name: Option<String>,
    },
}

/// One `asymmetricKeyLifetime` restriction: new certificate keys may live at most
/// `max_lifetime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLifetimeCap {
    pub max_lifetime: TimeDelta,
    /// As the policy writes it (`P365D`).
    pub max_lifetime_iso: String,
    /// The restriction applies to objects created after this instant (none: to all).
    pub restrict_for_apps_created_after: Option<DateTime<Utc>>,
    pub source: CapSource,
}

impl KeyLifetimeCap {
    /// Whether the cap applies to an object created at `created` (unknown: assume it does).
    pub fn applies_to(&self, created: Option<DateTime<Utc>>) -> bool {
        match (self.restrict_for_apps_created_after, created) {
            (Some(after), Some(c)) => c > after,
            _ => true,
        }
    }

    /// The latest `endDateTime` a key added at `now` may have under every reading of the cap
    /// (measured from the key's start, or from its creation: docs/protocol.md §5.5 [U]): `now +
    /// max_lifetime`, whole seconds.
    pub fn latest_end(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let end = now + self.max_lifetime;
        DateTime::from_timestamp(end.timestamp(), 0).unwrap_or(end)
    }
}

/// The key caps of the tenant default policy, as configured (`None` when the policy is
/// disabled or sets no enabled `asymmetricKeyLifetime`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantKeyPolicy {
    pub is_enabled: bool,
    pub application: Option<KeyLifetimeCap>,
    pub service_principal: Option<KeyLifetimeCap>,
}

/// The caps that apply: to one application (its own policy, else the default's application
/// restriction that applies to its creation date), and to service principals (the default's,
/// as configured: check [`KeyLifetimeCap::applies_to`] with the principal's creation date).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyLifetimeCaps {
    pub application: Option<KeyLifetimeCap>,
    pub service_principal: Option<KeyLifetimeCap>,
}

/// An ISO 8601 duration (`P365D`, `P1Y`, `P4DT12H30M5S`), read conservatively: a year counts
/// 365 days and a month 28, so a date planned within the cap stays within whatever Entra counts.
pub fn parse_duration(s: &str) -> Option<TimeDelta> {
    let rest = s.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    const DAY: i64 = 86_400;
    let mut total = 0i64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let unit = units.iter().find(|(u, _)| *u == c)?.1;
            let n: i64 = num.parse().ok()?;
            total = total.checked_add(n.checked_mul(unit)?)?;
            num.clear();
            any = true;
        }
        num.is_empty().then_some(())
    };
    take(
        date,
        &[
            ('Y', 365 * DAY),
            ('M', 28 * DAY),
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
    if !any {
        return None;
    }
    TimeDelta::try_seconds(total)
}

/// The enabled `asymmetricKeyLifetime` of a restrictions object (`{"keyCredentials":[…]}`).
fn key_cap(restrictions: &Value, source: CapSource) -> Option<KeyLifetimeCap> {
    restrictions["keyCredentials"]
        .as_array()?
        .iter()
        .filter(|r| r["restrictionType"] == "asymmetricKeyLifetime" && r["state"] != "disabled")
        .filter_map(|r| {
            let iso = r["maxLifetime"].as_str()?;
            Some(KeyLifetimeCap {
                max_lifetime: parse_duration(iso)?,
                max_lifetime_iso: iso.to_string(),
                restrict_for_apps_created_after: r["restrictForAppsCreatedAfterDateTime"]
                    .as_str()
                    .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
                    .map(|d| d.with_timezone(&Utc)),
                source: source.clone(),
            })
        })
        .min_by_key(|c| c.max_lifetime)
}

/// The key caps of a `tenantAppManagementPolicy` document.
pub fn parse_tenant_policy(v: &Value) -> TenantKeyPolicy {
    let is_enabled = v["isEnabled"].as_bool().unwrap_or(false);
    let side = |name: &str| {
        is_enabled
            .then(|| key_cap(&v[name], CapSource::TenantDefault))
            .flatten()
    };
    TenantKeyPolicy {
        is_enabled,
        application: side("applicationRestrictions"),
        service_principal: side("servicePrincipalRestrictions"),
    }
}

/// The cap an application's own policies set: `Some(None)` when a policy is assigned but sets
/// no key cap (it still overrides the default), `None` when no policy is assigned.
pub fn parse_app_policies(v: &Value) -> Option<Option<KeyLifetimeCap>> {
    let policies = v["value"].as_array()?;
    let p = policies.first()?;
    if p["isEnabled"] == false {
        return Some(None);
    }
    Some(key_cap(
        &p["restrictions"],
        CapSource::AppPolicy {
            id: p["id"].as_str().unwrap_or_default().to_string(),
            display_name: p["displayName"].as_str().map(String::from),
        },
    ))
}

impl Graph<'_> {
    /// The tenant default policy's key caps.
    pub async fn default_key_policy(&self) -> Result<TenantKeyPolicy, GraphError> {
        let resp = self
            .call(
                reqwest::Method::GET,
                "policies/defaultAppManagementPolicy",
                &[],
                None,
                true,
            )
            .await?;
        let v: Value =
            serde_json::from_slice(&resp.body).map_err(|e| GraphError::Decode(e.to_string()))?;
        Ok(parse_tenant_policy(&v))
    }

    /// The caps that apply to `app` (its own policy overrides the default) and to service
    /// principals (the default's); `app` `None`: the default's only.
    pub async fn key_lifetime_caps(
        &self,
        app: Option<&Application>,
    ) -> Result<KeyLifetimeCaps, GraphError> {
        let default = self.default_key_policy().await?;
        let application = match app {
            None => default.application.clone(),
            Some(a) => {
                let resp = self
                    .call(
                        reqwest::Method::GET,
                        &format!("applications/{}/appManagementPolicies", a.id),
                        &[],
                        None,
                        true,
                    )
                    .await?;
                let v: Value = serde_json::from_slice(&resp.body)
                    .map_err(|e| GraphError::Decode(e.to_string()))?;
                match parse_app_policies(&v) {
                    Some(own) => own,
                    None => default
                        .application
                        .clone()
                        .filter(|c| c.applies_to(a.created_date_time)),
                }
            }
        };
        Ok(KeyLifetimeCaps {
            application,
            service_principal: default.service_principal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_conservatively() {
        assert_eq!(parse_duration("P365D"), Some(TimeDelta::days(365)));
        assert_eq!(parse_duration("P1Y"), Some(TimeDelta::days(365)));
        assert_eq!(parse_duration("P1M"), Some(TimeDelta::days(28)));
        assert_eq!(
            parse_duration("P4DT12H30M5S"),
            Some(TimeDelta::seconds(4 * 86_400 + 12 * 3600 + 30 * 60 + 5))
        );
        for bad in ["", "P", "PT", "365D", "P1X", "P1", "P-1D"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn default_policy_caps() {
        let v = json!({"isEnabled": true,
            "applicationRestrictions": {"passwordCredentials": [], "keyCredentials": [
                {"restrictionType": "asymmetricKeyLifetime", "maxLifetime": "P365D", "state": "enabled",
                 "restrictForAppsCreatedAfterDateTime": "2020-01-01T00:00:00Z"}]},
            "servicePrincipalRestrictions": {"passwordCredentials": [], "keyCredentials": [
                {"restrictionType": "asymmetricKeyLifetime", "maxLifetime": "P90D", "state": "disabled"}]}});
        let p = parse_tenant_policy(&v);
        let app = p.application.unwrap();
        assert_eq!(app.max_lifetime, TimeDelta::days(365));
        assert!(!app.applies_to(Some("2019-06-01T00:00:00Z".parse().unwrap())));
        assert!(app.applies_to(Some("2021-06-01T00:00:00Z".parse().unwrap())));
        assert_eq!(p.service_principal, None, "a disabled restriction");
        let mut off = v.clone();
        off["isEnabled"] = json!(false);
        assert_eq!(parse_tenant_policy(&off).application, None);
    }

    #[test]
    fn an_assigned_policy_overrides() {
        assert_eq!(parse_app_policies(&json!({"value": []})), None);
        let none = json!({"value": [{"id": "p", "isEnabled": true, "restrictions": {"keyCredentials": []}}]});
        assert_eq!(parse_app_policies(&none), Some(None));
        let capped = json!({"value": [{"id": "p", "displayName": "certs 180d", "isEnabled": true,
            "restrictions": {"keyCredentials": [{"restrictionType": "asymmetricKeyLifetime", "maxLifetime": "P180D"}]}}]});
        let c = parse_app_policies(&capped).unwrap().unwrap();
        assert_eq!(c.max_lifetime, TimeDelta::days(180));
        assert_eq!(
            c.source,
            CapSource::AppPolicy {
                id: "p".into(),
                display_name: Some("certs 180d".into())
            }
        );
        let now: DateTime<Utc> = "2026-01-01T00:00:00.5Z".parse().unwrap();
        assert_eq!(c.latest_end(now).to_rfc3339(), "2026-06-30T00:00:00+00:00");
    }
}
