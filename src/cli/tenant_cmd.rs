//! `tenant discover` and `tenant metadata --file` (CONTRACT.md).

use super::{Context, Failure};
use crate::cert::{Finding, Severity};
use crate::tenant::{self, DocKind, MetadataDoc, SigningKey, TenantRef};
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum TenantCommand {
    /// Resolve a domain or GUID to the tenant id through OpenID discovery, then fetch and validate
    /// the ACS metadata New-CsOAuthServer will use.
    #[command(
        after_help = "Examples:\n  hybrid-trust tenant discover contoso.onmicrosoft.com\n  hybrid-trust --cloud gcc-high --output json tenant discover 72f988bf-86f1-41af-91ab-2d7cd011db47"
    )]
    Discover {
        /// A verified domain (contoso.com, contoso.onmicrosoft.com) or the tenant id.
        tenant: String,
    },
    /// Validate a saved metadata document offline: ACS/SharePoint JSON metadata, an OpenID
    /// configuration, or a JWKS.
    #[command(after_help = "Example:\n  hybrid-trust tenant metadata --file metadata.json")]
    Metadata {
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
    },
}

#[derive(Serialize)]
struct MetadataJson<'a> {
    tenant_id: Option<&'a str>,
    metadata_url: Option<&'a str>,
    kind: DocKind,
    issuer: Option<&'a str>,
    signing_keys: &'a [SigningKey],
    findings: &'a [Finding],
    oauth2_endpoint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_endpoint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud: Option<&'a str>,
}

fn text(doc: &MetadataDoc, tenant_id: Option<&str>, metadata_url: Option<&str>) -> String {
    let mut s = String::new();
    let mut row = |k: &str, v: &str| s.push_str(&format!("{k:<16}{v}\n"));
    row("Tenant id:", tenant_id.unwrap_or("(none)"));
    if let Some(u) = metadata_url {
        row("Metadata URL:", u);
    }
    row(
        "Document:",
        match doc.kind {
            DocKind::AcsMetadata => "ACS JSON metadata",
            DocKind::OpenidConfiguration => "OpenID configuration",
            DocKind::Jwks => "JWKS",
        },
    );
    row("Issuer:", doc.issuer.as_deref().unwrap_or("(none)"));
    if let Some(e) = &doc.oauth2_endpoint {
        row("Token endpoint:", e);
    }
    if doc.signing_keys.is_empty() {
        row("Signing keys:", "(none)");
    }
    for (i, k) in doc.signing_keys.iter().enumerate() {
        row(
            if i == 0 { "Signing keys:" } else { "" },
            &format!(
                "{}  {}  until {}",
                k.thumbprint_sha1, k.subject, k.not_after
            ),
        );
    }
    push_findings(&mut s, &doc.findings);
    s
}

pub fn push_findings(s: &mut String, findings: &[Finding]) {
    if findings.is_empty() {
        s.push_str("Findings:       none\n");
        return;
    }
    s.push_str("Findings:\n");
    for f in findings {
        let sev = if f.severity == Severity::Error {
            "error"
        } else {
            "warning"
        };
        s.push_str(&format!("  {sev:<8}{:<24}{}\n", f.code, f.message));
    }
}

fn exit_for(findings: &[Finding]) -> u8 {
    u8::from(findings.iter().any(|f| f.severity == Severity::Error))
}

pub fn run(ctx: &Context, cmd: TenantCommand) -> Result<u8, Failure> {
    match cmd {
        TenantCommand::Metadata { file } => {
            let meta = std::fs::metadata(&file).map_err(|e| {
                Failure::input(
                    anyhow::Error::new(e).context(format!("cannot read {}", file.display())),
                    Some("check the path".to_string()),
                )
            })?;
            if meta.is_dir() || meta.len() > crate::cert::MAX_FILE_BYTES {
                return Err(Failure::input(
                    anyhow::anyhow!(
                        "{} is not a metadata document file (a directory, or over 1 MiB)",
                        file.display()
                    ),
                    Some(
                        "save the document the metadata URL returns and name that file".to_string(),
                    ),
                ));
            }
            let bytes = std::fs::read(&file).map_err(|e| {
                Failure::input(
                    anyhow::Error::new(e).context(format!("cannot read {}", file.display())),
                    None,
                )
            })?;
            let doc = tenant::parse_document(&bytes, ctx.now).map_err(|e| {
                Failure::input(
                    anyhow::Error::new(e).context(format!("{} is not a valid metadata document", file.display())),
                    Some("save it again from the metadata URL (it may be truncated, or an HTML error page)".to_string()),
                )
            })?;
            let j = MetadataJson {
                tenant_id: doc.tenant_id.as_deref(),
                metadata_url: None,
                kind: doc.kind,
                issuer: doc.issuer.as_deref(),
                signing_keys: &doc.signing_keys,
                findings: &doc.findings,
                oauth2_endpoint: doc.oauth2_endpoint.as_deref(),
                token_endpoint: None,
                cloud: None,
            };
            ctx.printer
                .emit(&j, || text(&doc, doc.tenant_id.as_deref(), None));
            Ok(exit_for(&doc.findings))
        }
        TenantCommand::Discover { tenant } => {
            let t = TenantRef::parse(&tenant).map_err(super::bad_tenant)?;
            let cloud = ctx.cloud()?;
            let http = ctx.http(&cloud)?;
            let rt = super::runtime()?;
            let d = rt
                .block_on(tenant::discover(&http, &cloud, &t, ctx.now))
                .map_err(|e| {
                    let hint = e.hint();
                    Failure::runtime(e, Some(hint))
                })?;
            let mut findings = d.metadata.findings.clone();
            if !cloud.acs_confirmed {
                findings.push(Finding {
                    severity: Severity::Warning,
                    code: "acs-host-unconfirmed",
                    message: format!("no Microsoft source confirms the ACS host {} for the {} cloud: check the metadata URL with Microsoft support, or use --cloud-file", cloud.acs_url, cloud.name),
                });
            }
            if d.metadata
                .tenant_id
                .as_deref()
                .is_some_and(|r| r != d.tenant_id)
            {
                findings.push(Finding {
                    severity: Severity::Error,
                    code: "realm-mismatch",
                    message: format!("the metadata's realm {} is not the tenant id {}: the metadata URL is not this tenant's", d.metadata.tenant_id.as_deref().unwrap_or("-"), d.tenant_id),
                });
            }
            let j = MetadataJson {
                tenant_id: Some(&d.tenant_id),
                metadata_url: Some(&d.metadata_url),
                kind: d.metadata.kind,
                issuer: d.metadata.issuer.as_deref(),
                signing_keys: &d.metadata.signing_keys,
                findings: &findings,
                oauth2_endpoint: d.metadata.oauth2_endpoint.as_deref(),
                token_endpoint: Some(&d.token_endpoint),
                cloud: Some(&cloud.name),
            };
            let mut doc = d.metadata.clone();
            doc.findings = findings.clone();
            ctx.printer
                .emit(&j, || text(&doc, Some(&d.tenant_id), Some(&d.metadata_url)));
            Ok(exit_for(&findings))
        }
    }
}
