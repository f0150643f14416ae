//! `cert inspect`, `cert export` and `cert remember-password` (docs/contract.md): flags to a loaded
//! certificate; the library checks it and renders the inspection ([`hybrid_trust::cert::report`]).

use super::password::PasswordArgs;
use super::{Context, Failure};
use hybrid_trust::cert::{self, CheckOptions, Inspection};
use std::path::PathBuf;

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

pub fn run(ctx: &Context, cmd: CertCommand) -> Result<u8, Failure> {
    match cmd {
        CertCommand::Inspect {
            path,
            password,
            sip_domain,
            require_private_key,
            horizon_days,
        } => {
            let loaded = password.load_cert(&path)?;
            let opts = CheckOptions {
                now: ctx.now,
                sip_domain,
                horizon_days: i64::from(horizon_days),
                require_private_key,
            };
            let inspection = Inspection::new(&loaded, cert::check(&loaded, &opts), ctx.now);
            ctx.printer.emit(&inspection, || inspection.text());
            Ok(inspection.exit_code())
        }
        CertCommand::RememberPassword { path, password } => {
            ctx.refuse_as_of("cert remember-password")?;
            // Prove the password opens the file before storing it.
            let pw = password.get()?.ok_or_else(|| {
                Failure::input(
                    anyhow::anyhow!("no password given"),
                    Some("give it with --password-env VAR or --password-file PATH".to_string()),
                )
            })?;
            let loaded = cert::load_file(&path, &mut || Ok(Some(pw.clone())))?;
            let store = hybrid_trust::keyring::SecretStore::open().map_err(|e| {
                let hint = e.hint().to_string();
                Failure::runtime(e, Some(hint))
            })?;
            let user = hybrid_trust::keyring::pfx_password_entry(&path);
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
            let loaded = password.load_cert(&path)?;
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
