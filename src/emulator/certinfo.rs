//! What the emulator needs to know about an X.509 certificate in a key credential or a client
//! assertion: validity, thumbprints and the RSA public key. Independent of the client's `cert`
//! module on purpose (see the module docs of `emulator`).

use chrono::{DateTime, Utc};
use sha1::Digest as _;
use x509_parser::prelude::{FromDer, X509Certificate};

pub struct CertInfo {
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub sha1: [u8; 20],
    pub sha256: [u8; 32],
    /// PKCS#1 `RSAPublicKey` DER when the key is RSA.
    pub rsa_public_pkcs1: Option<Vec<u8>>,
}

pub fn parse(der: &[u8]) -> Option<CertInfo> {
    let (rest, cert) = X509Certificate::from_der(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let v = cert.validity();
    let not_before = DateTime::<Utc>::from_timestamp(v.not_before.timestamp(), 0)?;
    let not_after = DateTime::<Utc>::from_timestamp(v.not_after.timestamp(), 0)?;
    let sha1: [u8; 20] = sha1::Sha1::digest(der).into();
    let sha256: [u8; 32] = sha2::Sha256::digest(der).into();
    let spki = cert.public_key();
    let rsa_public_pkcs1 = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(_)) => {
            Some(spki.subject_public_key.data.to_vec())
        }
        _ => None,
    };
    Some(CertInfo {
        not_before,
        not_after,
        sha1,
        sha256,
        rsa_public_pkcs1,
    })
}

pub fn hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}
