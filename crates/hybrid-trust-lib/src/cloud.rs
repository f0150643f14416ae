//! The clouds hybrid-trust can talk to: one table of national clouds with the source of every
//! host, and custom clouds from a JSON file (`--cloud-file`, also what `m365-emulator` writes as
//! the `cloud` object of its ready file). No host name appears anywhere else in the code.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A cloud's base URLs, without trailing slash. URLs may carry a path (custom clouds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloud {
    pub name: String,
    pub login_url: String,
    pub graph_url: String,
    pub acs_url: String,
    pub exchange_url: String,
    /// Extra CA to trust (custom clouds, the emulator).
    pub ca_file: Option<PathBuf>,
    /// Whether the ACS host is confirmed by a Microsoft source (docs/protocol.md §1.1: [U] for the
    /// US Government and China clouds).
    pub acs_confirmed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum National {
    Global,
    GccHigh,
    Dod,
    China,
}

impl National {
    pub fn cloud(self) -> Cloud {
        let c =
            |name: &str, login: &str, graph: &str, acs: &str, exo: &str, acs_confirmed: bool| {
                Cloud {
                    name: name.to_string(),
                    login_url: login.to_string(),
                    graph_url: graph.to_string(),
                    acs_url: acs.to_string(),
                    exchange_url: exo.to_string(),
                    ca_file: None,
                    acs_confirmed,
                }
            };
        match self {
            // Login/Graph: learn.microsoft.com/graph/deployments and Entra "authentication-national-cloud".
            // ACS: SFBDOCS configure-a-hybrid-environment.md (New-CsOAuthServer -MetadataUrl).
            // Exchange Online: the resource SfB Server asks for, outlook.office365.com (SFBDOCS
            // oauth-with-online-and-on-premises.md "Verify your success").
            National::Global => c(
                "global",
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
                "https://accounts.accesscontrol.windows.net",
                "https://outlook.office365.com",
                true,
            ),
            // US Government L4: login/Graph per graph/deployments; Exchange per CSS
            // Shared/AzureFunctions/Get-CloudServiceEndpoint.ps1; ACS host unconfirmed.
            National::GccHigh => c(
                "gcc-high",
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
                "https://login.microsoftonline.us",
                "https://outlook.office365.us",
                false,
            ),
            // US Government L5 (DoD): login host shared with L4; Graph dod-graph; Exchange per CSS.
            National::Dod => c(
                "dod",
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us",
                "https://login.microsoftonline.us",
                "https://outlook-dod.office365.us",
                false,
            ),
            // China (21Vianet): login.partner.microsoftonline.cn (Entra national-cloud doc; the older
            // login.chinacloudapi.cn is an alias), Graph per graph/deployments, Exchange per CSS;
            // ACS host unconfirmed.
            National::China => c(
                "china",
                "https://login.partner.microsoftonline.cn",
                "https://microsoftgraph.chinacloudapi.cn",
                "https://accounts.accesscontrol.chinacloudapi.cn",
                "https://partner.outlook.cn",
                false,
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("cannot read cloud file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cloud file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloudFile {
    name: String,
    login_url: String,
    graph_url: String,
    acs_url: String,
    exchange_url: String,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

impl Cloud {
    /// Reads a custom cloud: `{"name","login_url","graph_url","acs_url","exchange_url","ca_file"?}`.
    /// URLs must be https (http only for loopback), without trailing slash, query or fragment.
    /// A relative `ca_file` is resolved against the cloud file's directory.
    pub fn from_file(path: &Path) -> Result<Cloud, CloudError> {
        let bytes =
            crate::paths::read_limited(path, crate::paths::MAX_SETTINGS_FILE, "a cloud file")
                .map_err(|source| CloudError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
        let invalid = |reason: String| CloudError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let f: CloudFile = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        for (k, v) in [
            ("login_url", &f.login_url),
            ("graph_url", &f.graph_url),
            ("acs_url", &f.acs_url),
            ("exchange_url", &f.exchange_url),
        ] {
            check_base_url(v).map_err(|r| invalid(format!("{k}: {r}")))?;
        }
        if f.name.trim().is_empty() {
            return Err(invalid("name is empty".into()));
        }
        let ca_file = f.ca_file.map(|ca| {
            if ca.is_relative() {
                path.parent().unwrap_or(Path::new(".")).join(ca)
            } else {
                ca
            }
        });
        Ok(Cloud {
            name: f.name,
            login_url: f.login_url,
            graph_url: f.graph_url,
            acs_url: f.acs_url,
            exchange_url: f.exchange_url,
            ca_file,
            acs_confirmed: true,
        })
    }

    /// The ACS metadata document `New-CsOAuthServer -MetadataUrl` reads for a tenant.
    pub fn acs_metadata_url(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/metadata/json/1", self.acs_url)
    }
    pub fn openid_configuration_url(&self, tenant: &str) -> String {
        format!(
            "{}/{tenant}/v2.0/.well-known/openid-configuration",
            self.login_url
        )
    }
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.login_url)
    }
    pub fn graph_scope(&self) -> String {
        format!("{}/.default", self.graph_url)
    }
    pub fn exchange_scope(&self) -> String {
        format!("{}/.default", self.exchange_url)
    }
}

/// Whether `url` names this machine: 127.0.0.0/8, ::1 or `localhost`, the only hosts plain http
/// may be used with (the emulator, a test receiver), here and for webhooks.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn check_base_url(u: &str) -> Result<(), String> {
    // Errors show the URL redacted (issue 14, defect 6).
    let shown = crate::secret::redact_url(u);
    let parsed = reqwest::Url::parse(u).map_err(|e| format!("{shown:?} is not a URL ({e})"))?;
    let loopback = is_loopback(&parsed);
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        s => {
            return Err(format!(
                "{shown:?} uses {s}; only https (or http on loopback) is allowed"
            ));
        }
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "{shown:?} has credentials in it; a cloud URL names the service only"
        ));
    }
    if u.ends_with('/') {
        return Err(format!(
            "{shown:?} ends with '/'; give it without trailing slash"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("{shown:?} has a query or fragment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_clouds_have_https_hosts_without_trailing_slash() {
        for n in [
            National::Global,
            National::GccHigh,
            National::Dod,
            National::China,
        ] {
            let c = n.cloud();
            for u in [&c.login_url, &c.graph_url, &c.acs_url, &c.exchange_url] {
                assert!(check_base_url(u).is_ok(), "{u}");
            }
        }
        assert_eq!(
            National::Global.cloud().acs_metadata_url("t"),
            "https://accounts.accesscontrol.windows.net/t/metadata/json/1"
        );
        assert_eq!(
            National::Dod.cloud().graph_url,
            "https://dod-graph.microsoft.us"
        );
    }

    #[test]
    fn custom_cloud_file_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        let good = r#"{"name":"emu","login_url":"https://127.0.0.1:1/login","graph_url":"https://127.0.0.1:1/graph","acs_url":"https://127.0.0.1:1/acs","exchange_url":"https://127.0.0.1:1/exo","ca_file":"ca.pem"}"#;
        std::fs::write(&p, good).unwrap();
        let c = Cloud::from_file(&p).unwrap();
        assert_eq!(c.ca_file, Some(dir.path().join("ca.pem")));
        assert_eq!(
            c.token_url("x"),
            "https://127.0.0.1:1/login/x/oauth2/v2.0/token"
        );
        for bad in [
            good.replace("https://127.0.0.1:1/graph", "https://127.0.0.1:1/graph/"),
            good.replace("https://127.0.0.1:1/acs", "http://example.com/acs"),
            good.replace("\"name\":\"emu\",", ""),
            good.replace("}", ",\"extra\":1}"),
            "not json".to_string(),
        ] {
            std::fs::write(&p, &bad).unwrap();
            assert!(Cloud::from_file(&p).is_err(), "{bad}");
        }
    }
}
