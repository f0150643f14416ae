//! `cert inspect` and `cert export` (CONTRACT.md).

use super::password::PasswordArgs;
use super::{Context, Failure};
use crate::cert::{self, CheckOptions, Finding, Loaded, Severity};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Debug)]
pub enum CertCommand {
    /// Show a certificate's facts and check it against the OAuthTokenIssuer rules (exit 1 on an
    /// error finding).
    #[command(
        after_help = "Examples:\n  hybrid-trust cert inspect oauth.pfx --password-env PFX_PASSWORD --sip-domain contoso.com\n  hybrid-trust --output json cert inspect oauth.cer"
    )]
    Inspect {
        /// PEM, DER, Base64 .cer, or PFX/PKCS#12 file.
        path: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
        /// The SIP domain the certificate must cover (subject CN or a DNS SAN).
        #[arg(long, value_name = "DOMAIN")]
        sip_domain: Option<String>,
        /// Report a missing private key as an error (what verify and onboard need).
        #[arg(long)]
        require_private_key: bool,
        /// Warn when the certificate expires within this many days.
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        horizon_days: u32,
    },
    /// Export the public certificate: bare one-line Base64 DER on stdout, or a Base-64 encoded
    /// X.509 .cer file with --out. Never writes key material.
    #[command(
        after_help = "Examples:\n  hybrid-trust cert export oauth.pfx --password-env PFX_PASSWORD\n  hybrid-trust cert export oauth.pfx --password-env PFX_PASSWORD --out oauth.cer"
    )]
    Export {
        path: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
        /// Write a .cer file (PEM armour, 64 columns) here instead of printing Base64.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Store a PFX's password in the OS keyring, for `--password-keyring` (renewal jobs).
    #[command(
        after_help = "Example:\n  PFX_PASSWORD=... hybrid-trust cert remember-password oauth.pfx --password-env PFX_PASSWORD"
    )]
    RememberPassword {
        path: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

pub fn load(path: &Path, password: &PasswordArgs) -> Result<Loaded, Failure> {
    Ok(cert::load_file(path, &mut || password.get_for(path))?)
}

#[derive(Serialize)]
struct FindingJson<'a> {
    severity: Severity,
    code: &'a str,
    message: &'a str,
}

/// `cert inspect` JSON: the CONTRACT.md keys first, then extensions.
#[derive(Serialize)]
struct InspectJson<'a> {
    subject: &'a str,
    issuer: &'a str,
    sans: &'a [String],
    not_before: String,
    not_after: String,
    key_type: &'a str,
    key_bits: u32,
    thumbprint_sha1: String,
    x5t: String,
    x5t_s256: String,
    has_private_key: bool,
    base64: String,
    findings: Vec<FindingJson<'a>>,
    // Extensions.
    private_key_matches: Option<bool>,
    signature_algorithm: &'a str,
    serial: &'a str,
    format: &'a str,
    chain: Vec<&'a str>,
    days_left: i64,
}

fn rfc3339(d: chrono::DateTime<chrono::Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn run(ctx: &Context, cmd: CertCommand) -> Result<u8, Failure> {
    match cmd {
        CertCommand::Inspect {
            path,
            password,
            sip_domain,
            require_private_key,
            horizon_days,
        } => {
            let loaded = load(&path, &password)?;
            let opts = CheckOptions {
                now: ctx.now,
                sip_domain,
                horizon_days: i64::from(horizon_days),
                require_private_key,
            };
            let findings = cert::check(&loaded, &opts);
            print_inspect(ctx, &loaded, &findings);
            Ok(if findings.iter().any(|f| f.severity == Severity::Error) {
                1
            } else {
                0
            })
        }
        CertCommand::RememberPassword { path, password } => {
            // Prove the password opens the file before storing it.
            let pw = password.get()?.ok_or_else(|| {
                Failure::input(
                    anyhow::anyhow!("no password given"),
                    Some("give it with --password-env VAR or --password-file PATH".to_string()),
                )
            })?;
            let loaded = cert::load_file(&path, &mut || Ok(Some(pw.clone())))?;
            let store = crate::keyring::SecretStore::open().map_err(|e| {
                let hint = e.hint().to_string();
                Failure::runtime(e, Some(hint))
            })?;
            let user = super::password::keyring_user(&path);
            store
                .set(&user, &pw)
                .map_err(|e| Failure::runtime(e, Some("unlock the keyring".to_string())))?;
            ctx.printer.emit(&serde_json::json!({"stored": user, "keyring": store.describe(), "thumbprint_sha1": loaded.leaf.thumbprint_sha1()}), || {
                format!("stored the password of {} ({}) in {}\n", path.display(), loaded.leaf.thumbprint_sha1(), store.describe())
            });
            Ok(0)
        }
        CertCommand::Export {
            path,
            password,
            out,
            force,
        } => {
            let loaded = load(&path, &password)?;
            let der = loaded.leaf.der();
            match out {
                None => {
                    let b64 = cert::base64_der(der);
                    ctx.printer.emit(&serde_json::json!({"base64": b64, "thumbprint_sha1": loaded.leaf.thumbprint_sha1()}), || format!("{b64}\n"));
                }
                Some(out) => {
                    ctx.refuse_as_of("cert export --out")?;
                    super::files::write_new_file(&out, cert::pem_armour(der).as_bytes(), force)?;
                    ctx.printer.emit(
                        &serde_json::json!({"path": out.display().to_string(), "thumbprint_sha1": loaded.leaf.thumbprint_sha1()}),
                        || format!("wrote {} (certificate {}, public part only)\n", out.display(), loaded.leaf.thumbprint_sha1()),
                    );
                }
            }
            Ok(0)
        }
    }
}

fn print_inspect(ctx: &Context, l: &Loaded, findings: &[Finding]) {
    let c = &l.leaf;
    let json = InspectJson {
        subject: &c.subject,
        issuer: &c.issuer,
        sans: &c.sans,
        not_before: rfc3339(c.not_before),
        not_after: rfc3339(c.not_after),
        key_type: c.key_type.name(),
        key_bits: c.key_bits,
        thumbprint_sha1: c.thumbprint_sha1(),
        x5t: c.x5t(),
        x5t_s256: c.x5t_s256(),
        has_private_key: l.key.is_some(),
        base64: c.base64(),
        findings: findings
            .iter()
            .map(|f| FindingJson {
                severity: f.severity,
                code: f.code,
                message: &f.message,
            })
            .collect(),
        private_key_matches: l.key_matches(),
        signature_algorithm: &c.signature_algorithm,
        serial: &c.serial_hex,
        format: l.format.name(),
        chain: l.chain.iter().map(|c| c.subject.as_str()).collect(),
        days_left: (c.not_after - ctx.now).num_days(),
    };
    ctx.printer.emit(&json, || {
        let mut s = String::new();
        // One line per row: a subject or SAN from the file is shown escaped.
        let mut row = |k: &str, v: String| {
            s.push_str(&format!("{k:<14}{}\n", super::printer::display_safe(&v)))
        };
        row("Subject:", c.subject.clone());
        row("Issuer:", c.issuer.clone());
        row(
            "DNS names:",
            if c.sans.is_empty() {
                "(none)".into()
            } else {
                c.sans.join(", ")
            },
        );
        row(
            "Valid:",
            format!(
                "{} to {} ({} days left)",
                json.not_before, json.not_after, json.days_left
            ),
        );
        row("Key:", format!("{} {} bits", c.key_type.name(), c.key_bits));
        row("Signature:", c.signature_algorithm.clone());
        row("Thumbprint:", format!("{} (SHA-1)", json.thumbprint_sha1));
        row("x5t:", json.x5t.clone());
        row("x5t#S256:", json.x5t_s256.clone());
        row(
            "Private key:",
            match (l.key.is_some(), json.private_key_matches) {
                (false, _) => "no".into(),
                (true, Some(true)) => "yes, matches the certificate".into(),
                (true, Some(false)) => "yes, but it does NOT match the certificate".into(),
                (true, None) => "yes (not checked: unsupported algorithm)".into(),
            },
        );
        row(
            "Format:",
            format!(
                "{}{}",
                l.format.name(),
                if l.chain.is_empty() {
                    String::new()
                } else {
                    format!(" (+{} chain certificate(s))", l.chain.len())
                }
            ),
        );
        super::printer::push_findings(&mut s, findings, 14);
        s
    });
}
