//! Key material the emulator makes for itself: a CA and a loopback server certificate for TLS,
//! and the RSA token-signing key published in JWKS and ACS metadata. One signing key serves every
//! tenant, as Entra's keys are shared across tenants (the common JWKS).

use super::StartError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Persistable key material (the `--state` file carries it so tokens and the CA survive a restart).
#[derive(Clone, Serialize, Deserialize)]
pub struct Pki {
    pub ca_cert_pem: String,
    /// PKCS#8 DER, Base64.
    pub server_key_pkcs8: String,
    /// DER, Base64.
    pub server_cert: String,
    pub signing_key_pkcs8: String,
    pub signing_cert: String,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pki { .. }")
    }
}

fn err(e: impl std::fmt::Display) -> StartError {
    StartError::Pki(e.to_string())
}

/// Key material made beforehand, for [`Config::keys`](crate::Config::keys): a process that
/// starts many emulators (a test binary) makes it once, or takes a pre-made RSA key, instead of
/// an RSA-2048 key per start. Each emulator started with it has the same CA, server certificate
/// and token-signing key. Not for an emulator whose state outlives the process: a `--state`
/// file keeps the keys it was first started with.
#[derive(Clone, Debug)]
pub struct Keys(pub(crate) Pki);

impl Keys {
    /// Fresh keys, as an emulator started without [`Config::keys`](crate::Config::keys) makes.
    pub fn generate() -> Result<Keys, StartError> {
        Pki::generate().map(Keys)
    }

    /// A fresh CA and server certificate (ECDSA, quick to make) and `signing_key_pem`, an RSA
    /// private key in PKCS#8 PEM, as the token-signing key.
    pub fn with_signing_key(signing_key_pem: &str) -> Result<Keys, StartError> {
        let key = KeyPair::from_pem(signing_key_pem).map_err(err)?;
        if !key.is_compatible(&rcgen::PKCS_RSA_SHA256) {
            return Err(err("the token-signing key is not an RSA key"));
        }
        Pki::with_signing_key(key).map(Keys)
    }
}

impl Pki {
    pub fn generate() -> Result<Pki, StartError> {
        // Token signing: RSA 2048 like Entra.
        let signing_key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(err)?;
        Pki::with_signing_key(signing_key)
    }

    fn with_signing_key(signing_key: KeyPair) -> Result<Pki, StartError> {
        // CA and server: ECDSA P-256 (fast to make).
        // TLS certificates are checked against the machine's real time, not the emulator's clock.
        let now = time::OffsetDateTime::from_unix_timestamp(crate::clock::system_now().timestamp())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let mut ca_params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "m365-emulator local CA");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = now - time::Duration::days(1);
        ca_params.not_after = now + time::Duration::days(3650);
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let mut sp = CertificateParams::new(vec!["localhost".to_string()]).map_err(err)?;
        sp.subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        sp.subject_alt_names
            .push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        let mut sdn = DistinguishedName::new();
        sdn.push(DnType::CommonName, "localhost");
        sp.distinguished_name = sdn;
        sp.not_before = now - time::Duration::days(1);
        sp.not_after = now + time::Duration::days(3650);
        let server_cert = sp.signed_by(&server_key, &issuer).map_err(err)?;

        let mut kp = CertificateParams::default();
        let mut kdn = DistinguishedName::new();
        kdn.push(DnType::CommonName, "accounts.accesscontrol.windows.net");
        kp.distinguished_name = kdn;
        kp.not_before = now - time::Duration::days(30);
        kp.not_after = now + time::Duration::days(5 * 365);
        let signing_cert = kp.self_signed(&signing_key).map_err(err)?;

        Ok(Pki {
            ca_cert_pem: ca_cert.pem(),
            server_key_pkcs8: STANDARD.encode(server_key.serialize_der()),
            server_cert: STANDARD.encode(server_cert.der()),
            signing_key_pkcs8: STANDARD.encode(signing_key.serialize_der()),
            signing_cert: STANDARD.encode(signing_cert.der()),
        })
    }

    pub fn signing_cert_der(&self) -> Vec<u8> {
        STANDARD.decode(&self.signing_cert).unwrap_or_default()
    }

    /// A rustls server configuration for the loopback certificate, offering h2 and http/1.1.
    pub fn rustls_config(&self) -> Result<rustls::ServerConfig, StartError> {
        let cert = rustls::pki_types::CertificateDer::from(
            STANDARD.decode(&self.server_cert).map_err(err)?,
        );
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            STANDARD.decode(&self.server_key_pkcs8).map_err(err)?.into(),
        );
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(err)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }
}
