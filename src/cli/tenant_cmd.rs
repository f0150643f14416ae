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
    /// Record a tenant in the ledger without touching the network (fleets onboarded elsewhere).
    #[command(
        after_help = "Examples:\n  hybrid-trust tenant add contoso.onmicrosoft.com --cert oauth.cer\n  hybrid-trust tenant add fabrikam.com --cert oauth.cer --credential-end 2027-06-30 --notify uc-admins@fabrikam.com"
    )]
    Add {
        /// The tenant's domain (or id).
        domain: String,
        /// The on-prem OAuthTokenIssuer certificate (public part is enough).
        #[arg(long, value_name = "PATH")]
        cert: Option<PathBuf>,
        #[command(flatten)]
        password: super::password::PasswordArgs,
        /// Target applications (default 00000004-0000-0ff1-ce00-000000000000).
        #[arg(long = "app-id", value_name = "GUID")]
        app_ids: Vec<String>,
        /// The end of the key credential already on the tenant, if known (status --live finds it otherwise).
        #[arg(long, value_name = "DATE", requires = "cert")]
        credential_end: Option<String>,
        /// Reminder recipients for this tenant (repeatable; override the config's).
        #[arg(long, value_name = "EMAIL")]
        notify: Vec<String>,
    },
    /// Remove a tenant from the ledger (nothing changes in the tenant).
    Remove { domain: String },
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
    // One line per row: an issuer or subject from the document is shown escaped.
    let mut row =
        |k: &str, v: &str| s.push_str(&format!("{k:<16}{}\n", super::printer::display_safe(v)));
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
    super::printer::push_findings(&mut s, &doc.findings, 16);
    s
}

fn exit_for(findings: &[Finding]) -> u8 {
    u8::from(findings.iter().any(|f| f.severity == Severity::Error))
}

pub fn run(ctx: &Context, cmd: TenantCommand) -> Result<u8, Failure> {
    match cmd {
        TenantCommand::Add {
            domain,
            cert,
            password,
            app_ids,
            credential_end,
            notify,
        } => {
            ctx.refuse_as_of("tenant add")?;
            let name = TenantRef::parse(&domain)
                .map_err(super::bad_tenant)?
                .to_string();
            let apps = super::args::app_ids(&app_ids)?;
            let loaded = cert.as_ref().map(|p| password.load_cert(p)).transpose()?;
            let end = credential_end
                .as_deref()
                .map(|d| super::args::parse_date("--credential-end", d))
                .transpose()?;
            for n in &notify {
                if !n.contains('@') || n.contains(char::is_whitespace) {
                    return Err(Failure::input(
                        anyhow::anyhow!("--notify {n:?} is not an email address"),
                        None,
                    ));
                }
            }
            let now = ctx.clock.now();
            let status = ctx.record(&name, &apps, |rec| {
                if let Some(l) = &loaded {
                    let c = crate::ledger::CertRecord::from_cert(&l.leaf);
                    if let Some(e) = end {
                        for app in &rec.app_ids.clone() {
                            rec.record_credential(crate::ledger::CredentialRecord {
                                app_id: app.clone(),
                                key_id: None,
                                thumbprint_sha1: c.thumbprint_sha1.clone(),
                                start: c.not_before,
                                end: e.min(c.not_after),
                                recorded_at: now,
                            });
                        }
                    }
                    rec.cert = Some(c);
                }
                for n in &notify {
                    if !rec.notify.contains(n) {
                        rec.notify.push(n.clone());
                    }
                }
                rec.log(now, "tenant add", "recorded without network");
                crate::status::evaluate(rec, now, crate::status::Thresholds::default())
            })?;
            ctx.printer.emit(&status, || {
                format!(
                    "recorded {name}: {} ({})\n",
                    status.state.name(),
                    status.next_action
                )
            });
            Ok(0)
        }
        TenantCommand::Remove { domain } => {
            ctx.refuse_as_of("tenant remove")?;
            let name = TenantRef::parse(&domain)
                .map_err(super::bad_tenant)?
                .to_string();
            let store = ctx.ledger_store()?;
            let mut guard = store
                .lock(std::time::Duration::from_secs(60))
                .map_err(super::ledger_rec::failure)?;
            let before = guard.ledger.tenants.len();
            guard.ledger.tenants.retain(|t| !t.is(&name));
            let removed = before != guard.ledger.tenants.len();
            guard.commit().map_err(super::ledger_rec::failure)?;
            if !removed {
                return Err(Failure::input(
                    anyhow::anyhow!("{name} is not in the ledger"),
                    Some("see hybrid-trust status --all".to_string()),
                ));
            }
            crate::audit::AuditLog::in_dir(&ctx.state_dir()?)
                .append(&crate::audit::AuditEntry {
                    ts: ctx.clock.now(),
                    actor: "local",
                    action: "tenant.remove",
                    tenant: &name,
                    app_id: "",
                    service_principal_id: "",
                    before: None,
                    after: None,
                    before_names: None,
                    after_names: None,
                    note: "removed from the ledger; nothing changed in the tenant",
                })
                .map_err(|e| Failure::runtime(e, None))?;
            ctx.printer.emit(&serde_json::json!({"removed": name}), || {
                format!("removed {name} from the ledger (nothing changed in the tenant)\n")
            });
            Ok(0)
        }
        TenantCommand::Metadata { file } => {
            let bytes = crate::paths::read_limited(
                &file,
                crate::paths::MAX_DOCUMENT_FILE,
                "a metadata document",
            )
            .map_err(|e| {
                Failure::input(
                    anyhow::Error::new(e).context(format!("cannot read {}", file.display())),
                    Some(
                        "save the document the metadata URL returns and name that file".to_string(),
                    ),
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
