//! The demo (`hybrid-trust demo`): an emulated tenant on loopback, onboarded by this very binary,
//! then the yearly job on the emulator's moved clock: eleven months later the reminder arrives
//! and `renew` re-windows the key; a new certificate is rolled in, confirmed and the old key
//! retired. Everything it made stays in `./hybrid-trust-demo/` (the ledger, the audit log, the
//! on-prem scripts, the certificates, the fleet report `report.html`, the reminders the emulated
//! Exchange Online received in `mail/`, the emulator's CA and a cloud file to point the tool at
//! it); a rerun replaces that folder, and refuses one it did not make.
//!
//! The first day runs the real binary (`onboard`, `status`) so a newcomer sees the commands they
//! will type; the months after run the library's workflows on a shifted [`Clock`], the way the
//! simulation of years in `tests/lifecycle_simulation.rs` does, since the binary only reads the
//! system time.

use chrono::{DateTime, TimeDelta, Utc};
use hybrid_trust::cert::Certificate;
use hybrid_trust::clock::Clock;
use hybrid_trust::cloud::Cloud;
use hybrid_trust::config::GraphMailChannel;
use hybrid_trust::fleet::Fleet;
use hybrid_trust::ledger::{CertRecord, LedgerStore};
use hybrid_trust::notify::graph_mail::GraphMail;
use hybrid_trust::renew::Policy;
use hybrid_trust::session::confirm::{self, Evidence};
use hybrid_trust::session::{Session, renewal::describe};
use hybrid_trust::status::Thresholds;
use hybrid_trust::sts::{AdminCredential, TokenProvider};
use m365_emulator::{ReadyTenant, RunningEmulator};
use std::path::{Path, PathBuf};
use std::process::Command;

mod exchange;
pub use exchange::EXPORT as EXCHANGE_EXPORT;

/// The folder the demo leaves behind, relative to the working directory.
pub const FOLDER: &str = "hybrid-trust-demo";
/// The fleet report the demo leaves (`status --format html`).
pub const REPORT: &str = "report.html";
/// Where the demo's reminders go (the emulator accepts any recipient).
const MAIL_TO: &str = "uc-admins@contoso.com";
/// The file that marks a folder as the demo's own (a rerun may replace only such a folder).
const MARKER: &str = ".made-by-hybrid-trust-demo";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0} exists and was not made by the demo")]
    NotOurs(PathBuf),
    #[error("demo: {0}")]
    Failed(String),
}

impl DemoError {
    pub fn hint(&self) -> String {
        match self {
            DemoError::NotOurs(_) => "move it away, or run the demo from another directory".into(),
            DemoError::Failed(_) => "this runs only on loopback; report it as a bug".into(),
        }
    }
}

fn failed(e: impl std::fmt::Display) -> DemoError {
    DemoError::Failed(e.to_string())
}

/// A running demo: the emulator, its tenant, and the folder.
pub struct Demo {
    pub emu: RunningEmulator,
    pub tenant: ReadyTenant,
    pub cloud: Cloud,
    pub folder: PathBuf,
    pub cloud_file: PathBuf,
    pub state: PathBuf,
    pub cert: PathBuf,
}

/// Where the demo's output is and what to do next, for the terminal.
pub fn outro() -> String {
    format!(
        "\nWhat the demo made is in ./{FOLDER}/ (a rerun replaces it):\n  \
         {REPORT}    the fleet report at the end of the year; open it in a browser\n  \
         mail/          the reminders the emulated Exchange Online received (.html as sent, .txt with headers)\n  \
         state/         the ledger (one file per tenant), audit.log, and the on-prem scripts (*.ps1)\n  \
         exchange-export/  the Exchange Server export (Get-AuthConfig, the organization GUID, the Auth Certificates' .cer) renew --trust exchange --from read\n  \
         *.pem          the two OAuthTokenIssuer certificates; cloud.json + emulator-ca.pem point the tool at the emulator (with demo --serve)\n\n\
         What next, on your own tenant:\n  \
         hybrid-trust cert inspect oauth.pfx --password-env PFX_PASSWORD --sip-domain contoso.com\n  \
         hybrid-trust onboard --tenant contoso.onmicrosoft.com --cert oauth.pfx --password-env PFX_PASSWORD --sip-domain contoso.com --pool-fqdn webext.contoso.com\n  \
         hybrid-trust renew --all --yes   and   hybrid-trust remind --all   (daily: scripts/systemd, scripts/cron)"
    )
}

/// A demo OAuthTokenIssuer certificate (RSA 2048, CN=sfb.contoso.com, SANs for the SIP domain)
/// valid from a day before `from` for two years: the PEM with its key.
pub fn certificate(from: DateTime<Utc>) -> Result<(String, Certificate), DemoError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(failed)?;
    let mut p = rcgen::CertificateParams::new(vec![
        "sfb.contoso.com".to_string(),
        "contoso.com".to_string(),
        "sip.contoso.com".to_string(),
    ])
    .map_err(failed)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "sfb.contoso.com");
    dn.push(rcgen::DnType::OrganizationName, "Contoso (demo)");
    p.distinguished_name = dn;
    let start = time::OffsetDateTime::from_unix_timestamp(from.timestamp()).map_err(failed)?;
    p.not_before = start - time::Duration::days(1);
    p.not_after = start + time::Duration::days(730);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = p.self_signed(&key).map_err(failed)?;
    let parsed = Certificate::from_der(cert.der()).map_err(failed)?;
    Ok((format!("{}{}", key.serialize_pem(), cert.pem()), parsed))
}

/// Empties `folder` if it is the demo's own (or does not exist); refuses anything else.
fn prepare(folder: &Path) -> Result<(), DemoError> {
    if folder.exists() {
        if !folder.join(MARKER).is_file() {
            return Err(DemoError::NotOurs(folder.to_path_buf()));
        }
        std::fs::remove_dir_all(folder).map_err(failed)?;
    }
    hybrid_trust::paths::ensure_private_dir(folder).map_err(failed)?;
    std::fs::write(
        folder.join(MARKER),
        "hybrid-trust demo output; a rerun replaces it\n",
    )
    .map_err(failed)?;
    Ok(())
}

impl Demo {
    /// Prepares `folder`, starts the emulator (TLS, its own CA) and writes what the tool needs.
    pub async fn start(folder: &Path) -> Result<Demo, DemoError> {
        let folder = &std::path::absolute(folder).map_err(failed)?;
        prepare(folder)?;
        let emu = m365_emulator::start(m365_emulator::Config {
            tls: true,
            log_requests: false,
            ..m365_emulator::Config::default()
        })
        .await
        .map_err(failed)?;
        let r = &emu.ready;
        let tenant = r
            .tenants
            .first()
            .cloned()
            .ok_or_else(|| failed("no tenant"))?;
        let ca = folder.join("emulator-ca.pem");
        std::fs::write(&ca, emu.ca_pem()).map_err(failed)?;
        let cloud_json = serde_json::json!({"name": "m365-emulator", "login_url": r.cloud.login_url, "graph_url": r.cloud.graph_url, "acs_url": r.cloud.acs_url, "exchange_url": r.cloud.exchange_url, "ca_file": ca});
        let cloud_file = folder.join("cloud.json");
        std::fs::write(&cloud_file, cloud_json.to_string()).map_err(failed)?;
        let cloud = Cloud::from_file(&cloud_file).map_err(failed)?;
        let cert = folder.join("oauth-token-issuer.pem");
        let (pem, _) = certificate(Clock::System.now())?;
        hybrid_trust::paths::write_atomic(&cert, pem.as_bytes(), 0o600).map_err(failed)?;
        let state = folder.join("state");
        hybrid_trust::paths::ensure_private_dir(&state).map_err(failed)?;
        let demo = Demo {
            emu,
            tenant,
            cloud,
            folder: folder.to_path_buf(),
            cloud_file,
            state,
            cert,
        };
        demo.exchange_start()?;
        Ok(demo)
    }

    /// What the demo is about to do, for the terminal.
    pub fn intro(&self) -> String {
        let (r, t) = (&self.emu.ready, &self.tenant);
        format!(
            "hybrid-trust demo: onboarding an emulated Microsoft 365 tenant, then a year of renewals (everything stays on this machine)\n\n  \
             emulated cloud   {} (Entra ID, ACS metadata, Microsoft Graph; TLS with its own CA)\n  \
             tenant           {} ({})\n  \
             on-prem cert     a fresh RSA-2048 OAuthTokenIssuer certificate for sfb.contoso.com (demo)\n  \
             admin identity   the tenant's admin app, its secret passed in an environment variable\n\n\
             onboard: discover the tenant, check the certificate, sign in, upload the key credential,\n\
             add the pool's service principal name, prove the trust with a real token, write the\n\
             Management Shell script, record the tenant in the ledger.\n\
             Exchange Server hybrid: the tenant's dedicated application ExchangeServerApp-<org guid> (made by\n\
             Microsoft's script) gets the Exchange Auth Certificate's key from an on-prem export folder.\n",
            r.cloud.login_url, t.domain, t.tenant_id
        )
    }

    /// This binary with the demo's cloud, state dir and admin identity; its stdout goes to
    /// `stdout_to_stderr` ? stderr : inherit.
    pub fn tool(&self, args: &[&str], stdout_to_stderr: bool) -> Result<bool, DemoError> {
        let exe = std::env::current_exe().map_err(failed)?;
        let none = self.folder.join("no-config.toml");
        std::fs::write(&none, "").map_err(failed)?;
        let status = Command::new(exe)
            .args(args)
            .env("HYBRID_TRUST_CLOUD_FILE", &self.cloud_file)
            .env("HYBRID_TRUST_STATE_DIR", &self.state)
            .env("HYBRID_TRUST_CLIENT_ID", &self.tenant.admin.client_id)
            .env("HT_DEMO_SECRET", &self.tenant.admin.client_secret)
            .env_remove("HYBRID_TRUST_OUTPUT")
            .env("HYBRID_TRUST_CONFIG", &none)
            .stdin(std::process::Stdio::null())
            .stdout(if stdout_to_stderr {
                std::process::Stdio::from(std::io::stderr())
            } else {
                std::process::Stdio::inherit()
            })
            .status()
            .map_err(failed)?;
        Ok(status.success())
    }

    /// The library's session for the tenant, on `clock`.
    fn session(&self, clock: Clock) -> Result<Session, DemoError> {
        let http = hybrid_trust::http::HttpClient::for_cloud(&self.cloud).map_err(failed)?;
        Ok(Session::signed_in(
            self.cloud.clone(),
            http,
            &self.tenant.domain,
            self.admin(),
            self.state.clone(),
            clock,
            false,
        ))
    }

    /// Moves the emulator and the returned clock `days` ahead of the system time.
    fn at(&self, days: i64) -> Clock {
        let offset = TimeDelta::days(days);
        self.emu.clock().set_offset_secs(offset.num_seconds());
        Clock::Shifted(offset)
    }

    /// The admin app's identity (its secret never leaves this process).
    fn admin(&self) -> AdminCredential {
        AdminCredential::Secret {
            client_id: self.tenant.admin.client_id.clone(),
            secret: hybrid_trust::secret::SecretString::new(
                self.tenant.admin.client_secret.clone(),
            ),
        }
    }

    /// The reminder channel the demo uses: `[[reminders.graph_mail]]` as the tenant's
    /// `noreply@` mailbox, signed in as the admin app (which the emulator grants `Mail.Send`).
    fn mailer(&self, clock: Clock) -> Result<GraphMail, DemoError> {
        let http = hybrid_trust::http::HttpClient::for_cloud(&self.cloud).map_err(failed)?;
        let domain = &self.tenant.domain;
        let tokens = TokenProvider::new(http.clone(), self.cloud.clone(), domain, self.admin())
            .with_clock(clock);
        Ok(GraphMail {
            channel: GraphMailChannel {
                from: format!("noreply@{domain}"),
                to: vec![MAIL_TO.to_string()],
                tenant: domain.clone(),
                client_id: Some(self.tenant.admin.client_id.clone()),
                client_secret_env: None,
                client_cert: None,
                client_cert_password_env: None,
            },
            graph_url: self.cloud.graph_url.clone(),
            scope: self.cloud.graph_scope(),
            tokens,
            http,
        })
    }

    /// The daily job at `clock`: `remind --all` through Microsoft Graph mail (the message lands
    /// in the emulator's mail store, saved to the folder at the end), then renew what is due.
    async fn daily(&self, clock: Clock, say: &dyn Fn(&str)) -> Result<(), DemoError> {
        let store = LedgerStore::in_dir(&self.state);
        let tenants = store.load().map_err(failed)?.tenants;
        let channels: Vec<Box<dyn hybrid_trust::notify::Notifier>> =
            vec![Box::new(self.mailer(clock)?)];
        let report = hybrid_trust::session::remind_all::run(
            &store,
            &tenants,
            &channels,
            &hybrid_trust::config::Reminders::default().thresholds_days,
            clock,
            false,
            1,
            &[],
            &hybrid_trust::progress::Silent,
        )
        .await
        .map_err(failed)?;
        if let Some(f) = report.failed.first() {
            return Err(failed(&f.error));
        }
        if report.sent.is_empty() {
            say("  remind: nothing due");
        }
        for d in &report.sent {
            say(&format!(
                "  remind: mailed to {MAIL_TO} through Microsoft Graph (sendMail):\n    {}",
                d.subject
            ));
            let digest = hybrid_trust::remind::Digest {
                entries: d.entries.clone(),
                advisories: d.advisories.clone(),
            };
            for line in digest.text().lines().take(8) {
                say(&format!("    | {line}"));
            }
        }
        self.renew(clock, None, say).await
    }

    /// Leaves the fleet report (`status --format html` at `clock`) and every message the
    /// emulator's `sendMail` accepted (`mail/NN.html`, `mail/NN.txt`) in the folder.
    pub fn keep(&self, clock: Clock) -> Result<(), DemoError> {
        let tenants = LedgerStore::in_dir(&self.state)
            .load()
            .map_err(failed)?
            .tenants;
        let fleet = Fleet::new(tenants, None, clock.now(), Thresholds::default());
        hybrid_trust::paths::write_atomic(
            &self.folder.join(REPORT),
            fleet.html().as_bytes(),
            0o600,
        )
        .map_err(failed)?;
        let dir = self.folder.join("mail");
        hybrid_trust::paths::ensure_private_dir(&dir).map_err(failed)?;
        for (i, m) in self.emu.mail().iter().enumerate() {
            let n = i + 1;
            let head = format!(
                "From: {}\nTo: {}\nSubject: {}\nReceived: {}\n\n",
                m.from,
                m.to.join(", "),
                m.subject,
                m.received_at.to_rfc3339()
            );
            let text = format!("{head}{}", m.body_text.as_deref().unwrap_or(""));
            hybrid_trust::paths::write_atomic(
                &dir.join(format!("{n:02}.txt")),
                text.as_bytes(),
                0o600,
            )
            .map_err(failed)?;
            if let Some(html) = &m.body_html {
                hybrid_trust::paths::write_atomic(
                    &dir.join(format!("{n:02}.html")),
                    html.as_bytes(),
                    0o600,
                )
                .map_err(failed)?;
            }
        }
        Ok(())
    }

    async fn renew(
        &self,
        clock: Clock,
        offered: Option<&Certificate>,
        say: &dyn Fn(&str),
    ) -> Result<(), DemoError> {
        let store = LedgerStore::in_dir(&self.state);
        let tenants = store.load().map_err(failed)?.tenants;
        let policy = Policy::default();
        for t in &tenants {
            let d = hybrid_trust::renew::decide(
                t,
                offered.map(CertRecord::from_cert).as_ref(),
                clock.now(),
                policy,
            );
            if !d.acts() {
                say(&format!("  renew: {}", describe(&d)));
                continue;
            }
            say(&format!("  renew: {}", describe(&d)));
            let r = self
                .session(clock)?
                .renew(t, d, offered, policy)
                .await
                .map_err(failed)?;
            match r.outcome {
                Ok(o) => say(&format!("         [{o}]")),
                Err(e) => return Err(failed(e)),
            }
            if let Some(p) = r.onprem_script {
                say(&format!("         on-prem step written to {}", p.display()));
            }
        }
        Ok(())
    }

    fn status(&self, clock: Clock, say: &dyn Fn(&str)) -> Result<(), DemoError> {
        let tenants = LedgerStore::in_dir(&self.state)
            .load()
            .map_err(failed)?
            .tenants;
        let fleet = Fleet::new(tenants, None, clock.now(), Thresholds::default());
        for s in &fleet.statuses {
            say(&format!(
                "  status: {} is {} ({} days left); next: {}",
                s.domain,
                s.state.name(),
                s.days_left.unwrap_or(0),
                s.next_action
            ));
        }
        Ok(())
    }

    /// The yearly job, on the emulator's moved clock.
    pub async fn year(&self, say: &dyn Fn(&str)) -> Result<(), DemoError> {
        let day = |clock: Clock| clock.now().format("%Y-%m-%d").to_string();
        let c = self.at(336);
        say(&format!(
            "\n11 months later ({}): the daily job (renew --all, remind --all) finds the key near its end",
            day(c)
        ));
        self.daily(c, say).await?;
        self.status(c, say)?;

        self.exchange_meac(370, say).await?;

        let c = self.at(400);
        say(&format!(
            "\n{}: a new OAuthTokenIssuer certificate is issued; renew --new-cert uploads it next to the old one",
            day(c)
        ));
        let (pem, new) = certificate(c.now())?;
        let new_path = self.folder.join("oauth-token-issuer-2.pem");
        hybrid_trust::paths::write_atomic(&new_path, pem.as_bytes(), 0o600).map_err(failed)?;
        self.renew(c, Some(&new), say).await?;
        self.status(c, say)?;

        let c = self.at(402);
        say(&format!(
            "\n{}: the admin ran the script on a Front End; after its EffectiveDate: renew --confirm-roll",
            day(c)
        ));
        let store = LedgerStore::in_dir(&self.state);
        let audit = hybrid_trust::audit::AuditLog::in_dir(&self.state);
        let confirmed = confirm::confirm_roll(
            &store,
            &audit,
            &self.tenant.domain,
            Evidence::Admin,
            "demo admin",
            c.now(),
        )
        .map_err(failed)?;
        say(&format!(
            "  {} is current; the next renew retires the old key",
            confirmed.thumbprint_sha1
        ));
        self.renew(c, None, say).await?;
        self.exchange_switch(402, say).await?;
        self.status(c, say)?;
        self.keep(c)?;
        self.at(0);
        Ok(())
    }
}
