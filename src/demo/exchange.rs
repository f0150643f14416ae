//! The demo's Exchange Server hybrid trust (issue 27): the dedicated application
//! `ExchangeServerApp-<organization guid>` seeded in the emulated tenant as Microsoft's
//! ConfigureExchangeHybridApplication.ps1 creates it, the export folder `exchange-export/` as the
//! script of `onprem script --trust exchange` writes it (Get-AuthConfig, the organization GUID,
//! the `.cer` files), and on the demo's calendar: the current Auth Certificate's key uploaded,
//! MEAC's staged certificate uploaded ahead of its EffectiveDate, the switch, and the previous
//! key retired once a fresh export shows the new one current.

use super::{Demo, DemoError, failed};
use chrono::{DateTime, TimeDelta, Utc};
use hybrid_trust::cert::Certificate;
use hybrid_trust::clock::Clock;
use std::path::PathBuf;

/// The demo organization's GUID (`Get-OrganizationConfig | Select Guid`).
pub const ORG_GUID: &str = "6f1d2c3b-4a59-4e68-9d7c-8b9a0f1e2d3c";
/// The export folder, in the demo's folder.
pub const EXPORT: &str = "exchange-export";

/// A demo Exchange Auth Certificate (RSA 2048, CN=Microsoft Exchange Server Auth Certificate, as
/// Exchange and MEAC make it) valid from `from` for `days`.
pub fn auth_certificate(from: DateTime<Utc>, days: i64) -> Result<Certificate, DemoError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(failed)?;
    let cn = "Microsoft Exchange Server Auth Certificate";
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, cn);
    p.distinguished_name = dn;
    let start = time::OffsetDateTime::from_unix_timestamp(from.timestamp()).map_err(failed)?;
    p.not_before = start;
    p.not_after = start + time::Duration::days(days);
    let cert = p.self_signed(&key).map_err(failed)?;
    Certificate::from_der(cert.der()).map_err(failed)
}

/// What Get-AuthConfig shows on-prem.
struct AuthConfig {
    pub current: Certificate,
    pub previous: Option<Certificate>,
    pub next: Option<(Certificate, DateTime<Utc>)>,
}

impl Demo {
    /// Seeds the dedicated application in the demo tenant and writes the first export: the
    /// current Auth Certificate, issued four years ago, ending 425 days from now.
    pub fn exchange_start(&self) -> Result<(), DemoError> {
        let org = ORG_GUID.parse().map_err(failed)?;
        self.emu
            .seed_exchange_app(&self.tenant.tenant_id, org, true)
            .map_err(failed)?;
        let now = Clock::System.now();
        let current = auth_certificate(now - TimeDelta::days(1400), 1825)?;
        let a = AuthConfig {
            current,
            previous: None,
            next: None,
        };
        self.exchange_export(&a)?;
        Ok(())
    }

    /// What the export folder says AuthConfig is.
    fn exchange_onprem(&self) -> Result<AuthConfig, DemoError> {
        let e = hybrid_trust::onprem::exchange::load_export(&self.folder.join(EXPORT))
            .map_err(failed)?;
        Ok(AuthConfig {
            current: e.current.cert,
            previous: e.previous.map(|p| p.cert),
            next: e.next.map(|n| n.cert).zip(e.next_effective),
        })
    }

    /// The export folder: `authconfig.json`, `organization.json` and one `.cer` per certificate.
    fn exchange_export(&self, a: &AuthConfig) -> Result<PathBuf, DemoError> {
        let dir = self.folder.join(EXPORT);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(failed)?;
        }
        hybrid_trust::paths::ensure_private_dir(&dir).map_err(failed)?;
        let tp = |c: &Certificate| c.thumbprint_sha1().to_string();
        let auth = serde_json::json!({
            "CurrentCertificateThumbprint": tp(&a.current),
            "PreviousCertificateThumbprint": a.previous.as_ref().map(tp),
            "NextCertificateThumbprint": a.next.as_ref().map(|(c, _)| tp(c)),
            "NextCertificateEffectiveDate": a.next.as_ref().map(|(_, e)| e.to_rfc3339()),
        });
        let write = |name: &str, bytes: &[u8]| {
            hybrid_trust::paths::write_atomic(&dir.join(name), bytes, 0o600).map_err(failed)
        };
        write("authconfig.json", auth.to_string().as_bytes())?;
        write(
            "organization.json",
            serde_json::json!({ "Guid": ORG_GUID })
                .to_string()
                .as_bytes(),
        )?;
        for c in std::iter::once(&a.current)
            .chain(a.previous.as_ref())
            .chain(a.next.as_ref().map(|(c, _)| c))
        {
            write(&format!("{}.cer", tp(c)), c.der())?;
        }
        Ok(dir)
    }

    /// `renew --trust exchange --from exchange-export --yes` at `clock`, through the library.
    pub async fn exchange_renew(&self, clock: Clock, say: &dyn Fn(&str)) -> Result<(), DemoError> {
        let export = hybrid_trust::onprem::exchange::load_export(&self.folder.join(EXPORT))
            .map_err(failed)?;
        let mut s = self.session(clock)?;
        let r = hybrid_trust::session::exchange::renew(
            &mut s,
            &export,
            None,
            TimeDelta::days(hybrid_trust::config::Renewal::default().horizon_days),
            &mut |_| true,
        )
        .await
        .map_err(failed)?;
        for line in r.text().lines() {
            say(&format!("  renew --trust exchange: {line}"));
        }
        Ok(())
    }

    /// MEAC stages a new five-year Auth Certificate 30 days ahead (on day `staged` of the demo's
    /// calendar); `renew --trust exchange` on the export uploads it ahead. Returns its
    /// EffectiveDate.
    pub async fn exchange_meac(
        &self,
        staged: i64,
        say: &dyn Fn(&str),
    ) -> Result<DateTime<Utc>, DemoError> {
        let c = self.at(staged);
        let new = auth_certificate(c.now() - TimeDelta::hours(1), 5 * 365)?;
        let effective = c.now() + TimeDelta::days(30);
        say(&format!(
            "\n{}: MEAC (MonitorExchangeAuthCertificate.ps1) renews the Exchange Auth Certificate on-prem: a new five-year one, staged to take effect {}; it makes no Graph call. The on-prem export shows it, and renew --trust exchange uploads it ahead",
            c.now().format("%Y-%m-%d"),
            effective.format("%Y-%m-%d %H:%M UTC")
        ));
        let mut a = self.exchange_onprem()?;
        a.next = Some((new, effective));
        self.exchange_export(&a)?;
        self.exchange_renew(c, say).await?;
        Ok(effective)
    }

    /// After the EffectiveDate: AuthConfig shows the new certificate current; `renew --trust
    /// exchange` on a fresh export retires the previous key.
    pub async fn exchange_switch(&self, day: i64, say: &dyn Fn(&str)) -> Result<(), DemoError> {
        let c = self.at(day);
        let mut a = self.exchange_onprem()?;
        let Some((new, effective)) = a.next.take() else {
            return Err(failed("nothing staged"));
        };
        if c.now() < effective {
            return Err(failed("the switch is not due yet"));
        }
        say(&format!(
            "\n{}: Exchange switched to the new Auth Certificate at its EffectiveDate; a fresh export shows it current, and renew --trust exchange retires the previous key",
            c.now().format("%Y-%m-%d")
        ));
        let old = std::mem::replace(&mut a.current, new);
        a.previous = Some(old);
        self.exchange_export(&a)?;
        self.exchange_renew(c, say).await
    }
}
