//! What `tenant discover` and `tenant metadata` show: a metadata document's facts and findings as
//! one value, serialized for scripts and rendered for people. Discovery adds what only the run
//! knows: whether the cloud's ACS host is confirmed, and whether the document's realm is the
//! tenant's id.

use super::{Discovery, DocKind, MetadataDoc, SigningKey};
use crate::cert::report::push_findings;
use crate::cert::{Finding, Severity};
use crate::cloud::Cloud;
use crate::terminal::display_safe;
use serde::Serialize;

/// A validated metadata document, with where it came from when it was discovered.
#[derive(Debug, Serialize)]
pub struct MetadataReport {
    pub tenant_id: Option<String>,
    pub metadata_url: Option<String>,
    pub kind: DocKind,
    pub issuer: Option<String>,
    pub signing_keys: Vec<SigningKey>,
    pub findings: Vec<Finding>,
    pub oauth2_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
}

impl MetadataReport {
    /// A document read from a file (`tenant metadata --file`).
    pub fn of_document(doc: MetadataDoc) -> MetadataReport {
        MetadataReport {
            tenant_id: doc.tenant_id,
            metadata_url: None,
            kind: doc.kind,
            issuer: doc.issuer,
            signing_keys: doc.signing_keys,
            findings: doc.findings,
            oauth2_endpoint: doc.oauth2_endpoint,
            token_endpoint: None,
            cloud: None,
        }
    }

    /// A discovered tenant's document, with the findings only discovery can make.
    pub fn of_discovery(d: Discovery, cloud: &Cloud) -> MetadataReport {
        let mut findings = d.metadata.findings;
        if !cloud.acs_confirmed {
            findings.push(Finding {
                severity: Severity::Warning,
                code: "acs-host-unconfirmed",
                message: format!("no Microsoft source confirms the ACS host {} for the {} cloud: check the metadata URL with Microsoft support, or use --cloud-file", cloud.acs_url, cloud.name),
            });
        }
        if let Some(realm) = d
            .metadata
            .tenant_id
            .as_deref()
            .filter(|r| *r != d.tenant_id)
        {
            findings.push(Finding {
                severity: Severity::Error,
                code: "realm-mismatch",
                message: format!("the metadata's realm {realm} is not the tenant id {}: the metadata URL is not this tenant's", d.tenant_id),
            });
        }
        MetadataReport {
            tenant_id: Some(d.tenant_id),
            metadata_url: Some(d.metadata_url),
            kind: d.metadata.kind,
            issuer: d.metadata.issuer,
            signing_keys: d.metadata.signing_keys,
            findings,
            oauth2_endpoint: d.metadata.oauth2_endpoint,
            token_endpoint: Some(d.token_endpoint),
            cloud: Some(cloud.name.clone()),
        }
    }

    /// The exit code: 1 when a finding is an error.
    pub fn exit_code(&self) -> u8 {
        crate::cert::report::exit_code(&self.findings)
    }

    /// For people: one row per fact (an issuer or subject from the document is shown escaped).
    pub fn text(&self) -> String {
        let mut s = String::new();
        let mut row = |k: &str, v: &str| s.push_str(&format!("{k:<16}{}\n", display_safe(v)));
        row("Tenant id:", self.tenant_id.as_deref().unwrap_or("(none)"));
        if let Some(u) = &self.metadata_url {
            row("Metadata URL:", u);
        }
        row(
            "Document:",
            match self.kind {
                DocKind::AcsMetadata => "ACS JSON metadata",
                DocKind::OpenidConfiguration => "OpenID configuration",
                DocKind::Jwks => "JWKS",
            },
        );
        row("Issuer:", self.issuer.as_deref().unwrap_or("(none)"));
        if let Some(e) = &self.oauth2_endpoint {
            row("Token endpoint:", e);
        }
        if self.signing_keys.is_empty() {
            row("Signing keys:", "(none)");
        }
        for (i, k) in self.signing_keys.iter().enumerate() {
            row(
                if i == 0 { "Signing keys:" } else { "" },
                &format!(
                    "{}  {}  until {}",
                    k.thumbprint_sha1, k.subject, k.not_after
                ),
            );
        }
        push_findings(&mut s, &self.findings, 16);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discovery(realm: Option<&str>) -> Discovery {
        Discovery {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            issuer: "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/".into(),
            token_endpoint: "https://login.example/t/oauth2/token".into(),
            metadata_url: "https://acs.example/t/metadata/json/1".into(),
            metadata: MetadataDoc {
                kind: DocKind::AcsMetadata,
                tenant_id: realm.map(str::to_string),
                issuer: Some("00000001-0000-0000-c000-000000000000@t".into()),
                signing_keys: Vec::new(),
                oauth2_endpoint: None,
                findings: Vec::new(),
            },
        }
    }

    #[test]
    fn discovery_reports_a_foreign_realm_and_an_unconfirmed_acs_host() {
        let mut cloud = crate::cloud::National::Global.cloud();
        let r = MetadataReport::of_discovery(
            discovery(Some("72f988bf-86f1-41af-91ab-2d7cd011db47")),
            &cloud,
        );
        assert!(r.findings.is_empty() == cloud.acs_confirmed, "{r:?}");
        cloud.acs_confirmed = false;
        let r = MetadataReport::of_discovery(
            discovery(Some("0cc2b5c4-6a6f-4e2b-9f77-8b6a1c1e2d3f")),
            &cloud,
        );
        let codes: Vec<_> = r.findings.iter().map(|f| f.code).collect();
        assert_eq!(codes, ["acs-host-unconfirmed", "realm-mismatch"]);
        assert_eq!(r.exit_code(), 1);
        let text = r.text();
        assert!(text.starts_with("Tenant id:      72f988bf-"), "{text}");
        assert!(text.contains("Signing keys:   (none)\n"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["cloud"], cloud.name.as_str());
        assert_eq!(
            json["token_endpoint"],
            "https://login.example/t/oauth2/token"
        );
    }

    #[test]
    fn a_file_has_no_url_token_endpoint_or_cloud() {
        let r = MetadataReport::of_document(discovery(None).metadata);
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["metadata_url"].is_null());
        assert!(json.get("token_endpoint").is_none() && json.get("cloud").is_none());
        assert_eq!(r.exit_code(), 0);
        assert!(r.text().contains("Findings:       none\n"));
    }
}
