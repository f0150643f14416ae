//! Saved `Get-Cs*` output, as an admin saves it from the Management Shell
//! (`Get-CsOAuthServer | Format-List > Get-CsOAuthServer.txt`): UTF-16 LE with a BOM (what
//! Windows PowerShell's `>` writes), UTF-8 with or without BOM, CRLF, blank lines between objects,
//! long values wrapped onto indented continuation lines. Parsed into objects, then compared with
//! what the trust needs.

use super::{EXCHANGE_APP_ID, SFB_SERVICE_NAME};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Decodes saved shell output: UTF-16 LE/BE with BOM, UTF-8 with or without BOM, or UTF-16 LE
/// without BOM (recognised by its NUL bytes).
pub fn decode_text(bytes: &[u8]) -> String {
    let utf16 = |b: &[u8], le: bool| {
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    match bytes {
        [0xff, 0xfe, rest @ ..] => utf16(rest, true),
        [0xfe, 0xff, rest @ ..] => utf16(rest, false),
        [0xef, 0xbb, 0xbf, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        b if b.len() >= 4 && b[1] == 0 && b[3] == 0 => utf16(b, true),
        b => String::from_utf8_lossy(b).into_owned(),
    }
}

/// One object of `Format-List` output: its properties in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PsObject {
    pub props: Vec<(String, String)>,
}

impl PsObject {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `Format-List` text into objects.
pub fn parse_format_list(text: &str) -> Vec<PsObject> {
    let mut out = Vec::new();
    let mut cur = PsObject::default();
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !cur.props.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let starts_indented = line.starts_with(' ') || line.starts_with('\t');
        match line.split_once(':') {
            Some((k, v)) if !starts_indented && is_identifier(k.trim_end()) => {
                cur.props
                    .push((k.trim_end().to_string(), v.trim().to_string()));
            }
            _ => {
                // A wrapped continuation of the previous value.
                if let Some((_, v)) = cur.props.last_mut() {
                    v.push_str(line.trim());
                }
            }
        }
    }
    if !cur.props.is_empty() {
        out.push(cur);
    }
    out
}

/// What was saved from the shell; `None` for a cmdlet whose file is missing.
#[derive(Debug, Clone, Default)]
pub struct Current {
    pub oauth_servers: Option<Vec<PsObject>>,
    pub partner_applications: Option<Vec<PsObject>>,
    pub oauth_configuration: Option<Vec<PsObject>>,
    pub certificates: Option<Vec<PsObject>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CurrentError {
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{dir} has none of Get-CsOAuthServer.txt, Get-CsPartnerApplication.txt, Get-CsOAuthConfiguration.txt, Get-CsCertificate.txt"
    )]
    Nothing { dir: PathBuf },
}

impl Current {
    pub fn load_dir(dir: &Path) -> Result<Current, CurrentError> {
        if !dir.is_dir() {
            return Err(CurrentError::NotADirectory(dir.to_path_buf()));
        }
        let read = |name: &str| -> Result<Option<Vec<PsObject>>, CurrentError> {
            let path = dir.join(format!("{name}.txt"));
            match crate::paths::read_limited(
                &path,
                crate::paths::MAX_DOCUMENT_FILE,
                "saved Get-Cs* output",
            ) {
                Ok(b) => Ok(Some(parse_format_list(&decode_text(&b)))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(CurrentError::Read { path, source }),
            }
        };
        let c = Current {
            oauth_servers: read("Get-CsOAuthServer")?,
            partner_applications: read("Get-CsPartnerApplication")?,
            oauth_configuration: read("Get-CsOAuthConfiguration")?,
            certificates: read("Get-CsCertificate")?,
        };
        if c.oauth_servers.is_none()
            && c.partner_applications.is_none()
            && c.oauth_configuration.is_none()
            && c.certificates.is_none()
        {
            return Err(CurrentError::Nothing {
                dir: dir.to_path_buf(),
            });
        }
        Ok(c)
    }
}

/// One difference between what is on the server and what the trust needs (fields in
/// alphabetical order: the order `onprem script` has always written them in).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    pub action: String,
    pub current: Option<String>,
    pub object: String,
    pub property: String,
    pub wanted: String,
}

impl Drift {
    /// The current value for people: `(missing)` or `(empty)` rather than nothing.
    pub fn current_display(&self) -> &str {
        match self.current.as_deref() {
            None => "(missing)",
            Some("") => "(empty)",
            Some(v) => v,
        }
    }
}

/// The drift for people: a count, then one line per difference.
pub fn drift_summary(d: &[Drift]) -> String {
    if d.is_empty() {
        return "drift: none; the script only checks and verifies\n".to_string();
    }
    let mut s = format!("drift: {} difference(s)\n", d.len());
    for x in d {
        s.push_str(&format!(
            "  {} {}: {} -> {} ({})\n",
            x.object,
            x.property,
            x.current_display(),
            x.wanted,
            x.action
        ));
    }
    s
}

/// What the comparison decided for each part of the script.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decisions {
    /// No OAuthTokenIssuer certificate seen (the script stops at its check).
    pub certificate_missing: bool,
    pub oauth_server: Change,
    pub partner_app: Change,
    pub oauth_configuration: bool,
    pub drift: Vec<Drift>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Change {
    /// Already right: leave it out of the script.
    Keep,
    /// Create (or recreate, the script decides from what it finds).
    #[default]
    Ensure,
    /// Only Set-* the properties.
    Update,
}

fn ident_is(o: &PsObject, name: &str) -> bool {
    o.get("Identity").is_some_and(|i| {
        i.eq_ignore_ascii_case(name) || i.to_ascii_lowercase().ends_with(&format!("/{name}"))
    })
}

fn eq_ci(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| {
        a.trim()
            .trim_end_matches('/')
            .eq_ignore_ascii_case(b.trim_end_matches('/'))
    })
}

/// Compares the saved state with what the trust needs.
pub fn compare(
    current: &Current,
    metadata_url: &str,
    autodiscover_url: Option<&str>,
    client_auth_sts: bool,
) -> Decisions {
    let mut d = Decisions::default();
    let drift =
        |object: &str, property: &str, current: Option<&str>, wanted: &str, action: &str| Drift {
            object: object.into(),
            property: property.into(),
            current: current.map(str::to_string),
            wanted: wanted.into(),
            action: action.into(),
        };

    if let Some(certs) = &current.certificates {
        let issuer = certs.iter().find(|o| {
            o.get("Use")
                .is_some_and(|u| u.eq_ignore_ascii_case("OAuthTokenIssuer"))
        });
        match issuer {
            None => {
                d.certificate_missing = true;
                d.drift.push(drift(
                    "certificate OAuthTokenIssuer",
                    "Thumbprint",
                    None,
                    "an assigned certificate",
                    "assign one with Set-CsCertificate -Type OAuthTokenIssuer -Identity Global",
                ));
            }
            Some(c) if c.get("Thumbprint").is_none_or(str::is_empty) => {
                d.certificate_missing = true;
                d.drift.push(drift(
                    "certificate OAuthTokenIssuer",
                    "Thumbprint",
                    Some(""),
                    "an assigned certificate",
                    "assign one with Set-CsCertificate",
                ));
            }
            Some(_) => {}
        }
    }

    match &current.oauth_servers {
        None => {}
        Some(servers) => match servers.iter().find(|o| ident_is(o, "microsoft.sts")) {
            None => d.drift.push(drift(
                "OAuthServer microsoft.sts",
                "Identity",
                None,
                "microsoft.sts",
                "create",
            )),
            Some(s) if !eq_ci(s.get("MetadataUrl"), metadata_url) => {
                d.drift.push(drift(
                    "OAuthServer microsoft.sts",
                    "MetadataUrl",
                    s.get("MetadataUrl"),
                    metadata_url,
                    "remove and recreate",
                ));
            }
            Some(_) => d.oauth_server = Change::Keep,
        },
    }

    match &current.partner_applications {
        None => {}
        Some(apps) => match apps.iter().find(|o| ident_is(o, "microsoft.exchange")) {
            None => d.drift.push(drift(
                "PartnerApplication microsoft.exchange",
                "Identity",
                None,
                "microsoft.exchange",
                "create",
            )),
            Some(a) if !eq_ci(a.get("ApplicationIdentifier"), EXCHANGE_APP_ID) => {
                d.drift.push(drift(
                    "PartnerApplication microsoft.exchange",
                    "ApplicationIdentifier",
                    a.get("ApplicationIdentifier"),
                    EXCHANGE_APP_ID,
                    "remove and recreate",
                ));
            }
            Some(a) => {
                let mut update = false;
                if !eq_ci(a.get("ApplicationTrustLevel"), "Full") {
                    d.drift.push(drift(
                        "PartnerApplication microsoft.exchange",
                        "ApplicationTrustLevel",
                        a.get("ApplicationTrustLevel"),
                        "Full",
                        "set",
                    ));
                    update = true;
                }
                if !eq_ci(a.get("UseOAuthServer"), "True") {
                    d.drift.push(drift(
                        "PartnerApplication microsoft.exchange",
                        "UseOAuthServer",
                        a.get("UseOAuthServer"),
                        "True",
                        "set",
                    ));
                    update = true;
                }
                d.partner_app = if update { Change::Update } else { Change::Keep };
            }
        },
    }

    match current.oauth_configuration.as_ref().and_then(|c| c.first()) {
        None if current.oauth_configuration.is_some() => {
            d.oauth_configuration = true;
            d.drift.push(drift(
                "OAuthConfiguration global",
                "ServiceName",
                None,
                SFB_SERVICE_NAME,
                "set",
            ));
        }
        None => d.oauth_configuration = true,
        Some(c) => {
            if !eq_ci(c.get("ServiceName"), SFB_SERVICE_NAME) {
                d.oauth_configuration = true;
                d.drift.push(drift(
                    "OAuthConfiguration global",
                    "ServiceName",
                    c.get("ServiceName"),
                    SFB_SERVICE_NAME,
                    "set",
                ));
            }
            if let Some(url) =
                autodiscover_url.filter(|u| !eq_ci(c.get("ExchangeAutodiscoverUrl"), u))
            {
                d.oauth_configuration = true;
                d.drift.push(drift(
                    "OAuthConfiguration global",
                    "ExchangeAutodiscoverUrl",
                    c.get("ExchangeAutodiscoverUrl"),
                    url,
                    "set",
                ));
            }
            let cas = c
                .get("ClientAuthorizationOAuthServerIdentity")
                .filter(|v| !v.is_empty());
            if client_auth_sts && !eq_ci(cas, "microsoft.sts") {
                d.oauth_configuration = true;
                d.drift.push(drift(
                    "OAuthConfiguration global",
                    "ClientAuthorizationOAuthServerIdentity",
                    cas,
                    "microsoft.sts",
                    "set",
                ));
            } else if !client_auth_sts && cas.is_some() && !eq_ci(cas, "microsoft.sts") {
                d.drift.push(drift(
                    "OAuthConfiguration global",
                    "ClientAuthorizationOAuthServerIdentity",
                    cas,
                    "microsoft.sts",
                    "not changed: a value other than microsoft.sts (often a stale on-prem Exchange server) breaks hybrid after mailbox moves; pass --client-auth-oauth-server to fix it",
                ));
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_summed_up_one_line_each() {
        assert_eq!(
            drift_summary(&[]),
            "drift: none; the script only checks and verifies\n"
        );
        let d = Drift {
            action: "recreate".into(),
            current: None,
            object: "OAuthServer microsoft.sts".into(),
            property: "MetadataUrl".into(),
            wanted: "https://accounts.accesscontrol.windows.net/t/metadata/json/1".into(),
        };
        assert_eq!(
            drift_summary(&[d]),
            "drift: 1 difference(s)\n  OAuthServer microsoft.sts MetadataUrl: (missing) -> https://accounts.accesscontrol.windows.net/t/metadata/json/1 (recreate)\n"
        );
    }

    const SERVERS: &str = "\r\nIdentity                          : microsoft.sts\r\nRealm                             :\r\nMetadataUrl                       : https://accounts.accesscontrol.windows.net/0cc2b5c4-6a6f-4e2b-9f77-8b6a1c\r\n                                    1e2d3f/metadata/json/1\r\nType                              : AzureAD\r\nAcceptSecurityIdentifierInformation : False\r\n\r\nIdentity                          : exch2016\r\nMetadataUrl                       : https://mail.contoso.com/autodiscover/metadata/json/1\r\n";

    #[test]
    fn parses_wrapped_values_and_several_objects() {
        let objs = parse_format_list(SERVERS);
        assert_eq!(objs.len(), 2);
        assert_eq!(
            objs[0].get("metadataurl"),
            Some(
                "https://accounts.accesscontrol.windows.net/0cc2b5c4-6a6f-4e2b-9f77-8b6a1c1e2d3f/metadata/json/1"
            )
        );
        assert_eq!(objs[0].get("Realm"), Some(""));
        assert_eq!(objs[1].get("Identity"), Some("exch2016"));
    }

    #[test]
    fn decodes_utf16_le_with_bom_as_powershell_writes_it() {
        let mut bytes = vec![0xff, 0xfe];
        for u in SERVERS.encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode_text(&bytes), SERVERS);
        let mut nobom = Vec::new();
        for u in SERVERS.encode_utf16() {
            nobom.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode_text(&nobom), SERVERS);
        assert_eq!(decode_text(&[0xef, 0xbb, 0xbf, b'a']), "a");
    }
}
