//! Flags several commands share, validated into settings: target applications, dates, tenant
//! names and pool FQDNs. Each bad value is a usage error (exit 2) with a hint.

use super::Failure;
use chrono::{DateTime, NaiveDate, Utc};
use hybrid_trust::microsoft::{KNOWN_TARGETS as KNOWN_APPS, SFB_APP_ID};
use hybrid_trust::tenant::TenantRef;

/// Validates `--app-id` values: GUIDs, never Exchange Online's shared principal.
pub fn app_ids(given: &[String]) -> Result<Vec<String>, Failure> {
    if given.is_empty() {
        return Ok(vec![SFB_APP_ID.to_string()]);
    }
    let mut out: Vec<String> = Vec::new();
    for a in given {
        let id = uuid::Uuid::parse_str(a.trim())
            .ok()
            .filter(|_| a.trim().len() == 36)
            .ok_or_else(|| {
                Failure::input(
                    anyhow::anyhow!("--app-id {a:?} is not a GUID"),
                    Some(format!(
                        "use {SFB_APP_ID} (Skype for Business Online), or a Teams service app id"
                    )),
                )
            })?
            .to_string();
        if let Err(e) = hybrid_trust::microsoft::check_target(&id) {
            let hint = e.hint().to_string();
            return Err(Failure::input(e, Some(hint)));
        }
        if !KNOWN_APPS.contains(&id.as_str()) {
            tracing::warn!(
                "--app-id {id} is not one of the Skype for Business / Teams service applications"
            );
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// `--start` / `--end`: RFC 3339 (converted to UTC) or a date (midnight UTC).
pub fn parse_date(flag: &str, s: &str) -> Result<DateTime<Utc>, Failure> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s.trim()) {
        return super::date_in_range(flag, d.with_timezone(&Utc));
    }
    if let Some(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return super::date_in_range(flag, d.and_utc());
    }
    Err(Failure::input(
        anyhow::anyhow!("{flag} {s:?} is not a date"),
        Some("give RFC 3339 (2027-01-31T00:00:00Z) or YYYY-MM-DD".to_string()),
    ))
}

pub fn tenant_arg(t: &str) -> Result<String, Failure> {
    Ok(TenantRef::parse(t).map_err(super::bad_tenant)?.to_string())
}

/// `--pool-fqdn` values (onboard, onprem script, spn add): each a valid FQDN, or a usage error.
pub fn pool_fqdns(values: &[String]) -> Result<Vec<hybrid_trust::onprem::Fqdn>, Failure> {
    values
        .iter()
        .map(|p| hybrid_trust::onprem::Fqdn::parse("--pool-fqdn", p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            Failure::input(
                e,
                Some("give the pool's external web services FQDN, e.g. webext.contoso.com".into()),
            )
        })
}
