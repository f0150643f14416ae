//! The on-prem step of a roll to a new OAuthTokenIssuer certificate:
//! `Set-CsCertificate -Type OAuthTokenIssuer -Thumbprint … -Roll -EffectiveDate …` (ODP
//! Set-CsCertificate.md; SFBDOCS `stage-av-and-oauth-certificates.md`). The thumbprint is
//! checked to be 40 hex digits and the date goes in through [`ps_quote`]; `[datetimeoffset]`
//! parses ISO 8601 whatever the server's regional format (which `-EffectiveDate` strings
//! otherwise depend on). The tenant name only appears in comments, and only a DNS name or GUID.

use super::quote::{UnsafeValue, ps_quote};
use chrono::{DateTime, Utc};

/// What the roll script needs.
pub struct RollInput<'a> {
    /// The tenant's domain (or GUID), for the comments.
    pub tenant: &'a str,
    /// The new certificate's SHA-1 thumbprint.
    pub thumbprint: &'a str,
    pub effective: DateTime<Utc>,
    /// When the old certificate expires, if known.
    pub old_not_after: Option<DateTime<Utc>>,
    /// When the new key was uploaded.
    pub uploaded: DateTime<Utc>,
}

/// The roll script (CRLF line ends, as Windows tools expect).
pub fn render_roll(r: &RollInput<'_>) -> Result<String, UnsafeValue> {
    // Quoted in the script although it is 40 hex digits: one of decimal digits only would be
    // a number to PowerShell, not the string -Thumbprint takes.
    let tp = r.thumbprint;
    if tp.len() != 40 || !tp.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(UnsafeValue {
            what: "thumbprint",
            value: tp.into(),
            why: "it is not 40 hex digits".into(),
        });
    }
    if !(crate::tenant::is_dns_name(r.tenant) || uuid::Uuid::parse_str(r.tenant).is_ok()) {
        return Err(UnsafeValue {
            what: "tenant",
            value: r.tenant.into(),
            why: "it is neither a DNS name nor a GUID".into(),
        });
    }
    let eff = ps_quote(
        "EffectiveDate",
        &r.effective.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
    )?;
    let old_end = r
        .old_not_after
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    Ok(format!(
        "# Roll the Skype for Business OAuthTokenIssuer certificate for tenant {domain} to {tp}.\r\n\
         # hybrid-trust uploaded the new certificate's key to the tenant next to the old one on {now}.\r\n\
         # First import the new certificate with its private key into the Local Computer store of\r\n\
         # every Front End (the OAuthTokenIssuer certificate is global: same on all servers).\r\n\
         $ErrorActionPreference = 'Stop'\r\n\
         Set-CsCertificate -Identity Global -Type OAuthTokenIssuer -Thumbprint '{tp}' -Roll -EffectiveDate ([datetimeoffset]{eff}).LocalDateTime\r\n\
         # The EffectiveDate in UTC with its offset (Format-List alone prints local time with no zone):\r\n\
         # save this output as Get-CsCertificate.txt for hybrid-trust renew --confirm-roll --current DIR.\r\n\
         Get-CsCertificate -Type OAuthTokenIssuer | Format-List Thumbprint, @{{Name = 'EffectiveDate'; Expression = {{ if ($_.EffectiveDate) {{ $_.EffectiveDate.ToUniversalTime().ToString('o') }} }}}}, PreviousThumbprint, Use\r\n\
         # After the old certificate expires ({old_end}), run: Remove-CsCertificate -Type OAuthTokenIssuer -Previous\r\n\
         # and hybrid-trust renew --tenant {domain} (it makes the new certificate current).\r\n",
        domain = r.tenant,
        now = r.uploaded.format("%Y-%m-%d %H:%M UTC"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn input<'a>(tenant: &'a str, tp: &'a str) -> RollInput<'a> {
        RollInput {
            tenant,
            thumbprint: tp,
            effective: Utc.with_ymd_and_hms(2027, 3, 1, 12, 0, 0).unwrap(),
            old_not_after: Some(Utc.with_ymd_and_hms(2027, 3, 10, 0, 0, 0).unwrap()),
            uploaded: Utc.with_ymd_and_hms(2027, 2, 28, 12, 0, 0).unwrap(),
        }
    }

    #[test]
    fn the_roll_step_quotes_its_date_and_checks_its_values() {
        let tp = "C018A043066A6F5CEC76253A1D3CAE84C0E2F730";
        let s = render_roll(&input("contoso.com", tp)).unwrap();
        assert!(s.contains(&format!("Set-CsCertificate -Identity Global -Type OAuthTokenIssuer -Thumbprint '{tp}' -Roll -EffectiveDate ([datetimeoffset]'2027-03-01T12:00:00+00:00').LocalDateTime\r\n")), "{s}");
        assert!(s.contains("expires (2027-03-10 00:00 UTC)"));
        // Issue 24: the EffectiveDate is printed in UTC with its offset, not as a local time.
        assert!(
            s.contains("$_.EffectiveDate.ToUniversalTime().ToString('o')"),
            "{s}"
        );
        assert!(render_roll(&input("contoso.com';Remove-Item C:\\", tp)).is_err());
        assert!(
            render_roll(&input(
                "contoso.com",
                "C018A043066A6F5CEC76253A1D3CAE84C0E2F73Z"
            ))
            .is_err()
        );
    }
}
