//! Tenants: what the user typed (a verified domain or a GUID), resolution to the tenant id through
//! the cloud's OpenID discovery, and the metadata documents (ACS/SharePoint JSON metadata, OpenID
//! configuration, JWKS) with the validation `New-CsOAuthServer -MetadataUrl` needs, the report
//! `tenant discover` and `tenant metadata` show ([`report`]), and recording or forgetting a tenant
//! in the ledger without the network ([`offline`]). Knows nothing of certificates' private keys
//! or Graph writes.

mod discover;
mod metadata;
pub mod offline;
pub mod report;

pub use discover::{DiscoverError, Discovery, discover, fetch_metadata};
pub use metadata::{DocKind, MetadataDoc, MetadataError, SigningKey, parse_document};
pub use offline::OfflineTenant;
pub use report::MetadataReport;

use std::fmt;

/// A tenant as the user names it: a GUID or a DNS domain (`contoso.onmicrosoft.com`,
/// `contoso.com`). Validated so it can go into a URL path and a PowerShell script safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantRef {
    Id(uuid::Uuid),
    Domain(String),
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is not a tenant: give a verified domain such as contoso.onmicrosoft.com, or the tenant id (a GUID)"
)]
pub struct BadTenant(pub String);

impl TenantRef {
    pub fn parse(s: &str) -> Result<TenantRef, BadTenant> {
        let t = s.trim();
        if let Some(id) = uuid::Uuid::parse_str(t).ok().filter(|_| t.len() == 36) {
            return Ok(TenantRef::Id(id));
        }
        if is_dns_name(t) {
            return Ok(TenantRef::Domain(t.to_ascii_lowercase()));
        }
        Err(BadTenant(s.to_string()))
    }

    pub fn as_path_segment(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for TenantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenantRef::Id(id) => write!(f, "{id}"),
            TenantRef::Domain(d) => f.write_str(d),
        }
    }
}

/// A DNS name of at least two labels: letters, digits, hyphens; no label starting or ending with
/// a hyphen; at most 253 characters.
pub fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && !s
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_refs() {
        assert_eq!(
            TenantRef::parse("Contoso.onmicrosoft.com").unwrap(),
            TenantRef::Domain("contoso.onmicrosoft.com".into())
        );
        assert!(matches!(
            TenantRef::parse("72f988bf-86f1-41af-91ab-2d7cd011db47").unwrap(),
            TenantRef::Id(_)
        ));
        for bad in [
            "",
            "contoso",
            "a b.com",
            "contoso.com/../x",
            "x';rm.com",
            "{tenantid}",
            "1.2.3.4",
            "72f988bf86f141af91ab2d7cd011db47x",
            "-a.com",
        ] {
            assert!(TenantRef::parse(bad).is_err(), "{bad}");
        }
    }
}
