//! One parsed X.509 certificate and the facts the tool reports about it.

use super::der;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use sha1::Digest as _;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    Ec,
    Ed25519,
    Other(String),
}

impl KeyType {
    pub fn name(&self) -> &str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::Ec => "EC",
            KeyType::Ed25519 => "Ed25519",
            KeyType::Other(s) => s,
        }
    }
}

/// A certificate and its facts, computed once at parse time.
#[derive(Debug, Clone)]
pub struct Certificate {
    der: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    pub subject_cn: Option<String>,
    /// DNS names from the subjectAltName extension.
    pub sans: Vec<String>,
    pub serial_hex: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub key_type: KeyType,
    pub key_bits: u32,
    pub signature_algorithm: String,
    pub signature_is_sha1: bool,
    /// `Some(false)` when a keyUsage extension is present without digitalSignature.
    pub key_usage_digital_signature: Option<bool>,
    pub is_ca: bool,
    /// The subjectPublicKey BIT STRING contents (PKCS#1 for RSA, the point for EC).
    pub(super) public_key: Vec<u8>,
}

const SIG_ALGS: &[(&str, &str, bool)] = &[
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption", false),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption", true),
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption", false),
    ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption", false),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption", false),
    ("1.2.840.113549.1.1.10", "RSASSA-PSS", false),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1", true),
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256", false),
    ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384", false),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512", false),
    ("1.3.101.112", "Ed25519", false),
    ("1.3.14.3.2.29", "sha1WithRSASignature", true),
];

impl Certificate {
    /// Parses one DER certificate; trailing bytes are refused.
    pub fn from_der(der: &[u8]) -> Result<Certificate, String> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| match e {
            x509_parser::nom::Err::Incomplete(_) => {
                "the data ends early: the file is truncated".to_string()
            }
            x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => {
                let text = e.to_string();
                if text.contains("Eof") || text.contains("Incomplete") {
                    "the data ends early: the file is truncated".to_string()
                } else {
                    format!("not a valid X.509 DER certificate: {text}")
                }
            }
        })?;
        if !rest.is_empty() {
            return Err(format!(
                "{} unexpected bytes after the certificate",
                rest.len()
            ));
        }
        let der = der.to_vec();
        let v = cert.validity();
        // A validity date outside years 1..=9999 (GeneralizedTime allows 0000) is refused here,
        // as every date from outside is (crate::dates): recorded in the ledger, it would make
        // the ledger unreadable.
        let to_utc = |t: i64| match DateTime::<Utc>::from_timestamp(t, 0) {
            Some(d) => crate::dates::check(d).map_err(|e| format!("a validity date {e}")),
            None => Err("validity date out of range".to_string()),
        };
        let not_before = to_utc(v.not_before.timestamp())?;
        let not_after = to_utc(v.not_after.timestamp())?;
        let subject_cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        let mut sans = Vec::new();
        let mut key_usage_digital_signature = None;
        let mut is_ca = false;
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for n in &san.general_names {
                        if let GeneralName::DNSName(d) = n {
                            sans.push((*d).to_string());
                        }
                    }
                }
                ParsedExtension::KeyUsage(ku) => {
                    key_usage_digital_signature = Some(ku.digital_signature())
                }
                ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
                _ => {}
            }
        }
        let spki = cert.public_key();
        let alg_oid = spki.algorithm.algorithm.to_id_string();
        let (key_type, key_bits) = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => (KeyType::Rsa, rsa.key_size() as u32),
            Ok(PublicKey::EC(point)) => (KeyType::Ec, ec_bits(point.data().len())),
            _ if alg_oid == "1.3.101.112" => (KeyType::Ed25519, 256),
            _ => (KeyType::Other(alg_oid), 0),
        };
        let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
        let (signature_algorithm, signature_is_sha1) = SIG_ALGS
            .iter()
            .find(|(oid, _, _)| *oid == sig_oid)
            .map_or((sig_oid.clone(), false), |(_, name, sha1)| {
                ((*name).to_string(), *sha1)
            });
        let serial_hex = cert
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        Ok(Certificate {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            subject_cn,
            sans,
            serial_hex,
            not_before,
            not_after,
            key_type,
            key_bits,
            signature_algorithm,
            signature_is_sha1,
            key_usage_digital_signature,
            is_ca,
            public_key: spki.subject_public_key.data.to_vec(),
            der,
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-1 of the DER as 40 uppercase hex digits, as Windows shows the thumbprint.
    pub fn thumbprint_sha1(&self) -> String {
        hex_upper(&sha1::Sha1::digest(&self.der))
    }

    pub fn sha1(&self) -> [u8; 20] {
        sha1::Sha1::digest(&self.der).into()
    }

    /// `x5t`: base64url SHA-1 of the DER (RFC 7515 §4.1.7).
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&self.der))
    }

    /// `x5t#S256`: base64url SHA-256 of the DER (RFC 7515 §4.1.8).
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&self.der))
    }

    /// Base64 of the DER, one line: what Windows' `GetRawCertData` gives and Graph's `key` takes.
    pub fn base64(&self) -> String {
        STANDARD.encode(&self.der)
    }

    /// RSA modulus and exponent of the certificate's key.
    pub(super) fn rsa_n_e(&self) -> Option<(&[u8], &[u8])> {
        (self.key_type == KeyType::Rsa)
            .then(|| der::rsa_n_e(&self.public_key, false))
            .flatten()
    }

    /// Whether `other` certifies this one's issuer (used to find the leaf of a chain).
    pub fn issued_by(&self, other: &Certificate) -> bool {
        self.issuer == other.subject && self.der != other.der
    }
}

fn ec_bits(point_len: usize) -> u32 {
    // Uncompressed point: 0x04 || X || Y.
    (point_len.saturating_sub(1) / 2 * 8) as u32
}

pub fn hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(not_before: ::time::OffsetDateTime, not_after: ::time::OffsetDateTime) -> Vec<u8> {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["sfb.contoso.com".into()]).unwrap();
        p.not_before = not_before;
        p.not_after = not_after;
        p.self_signed(&kp).unwrap().der().to_vec()
    }

    /// X.509 cannot hold chrono's far dates (GeneralizedTime has four year digits, and rcgen's
    /// `time` stops at ±9999), but it can hold the year 0, outside the range every date from
    /// outside must be in (crate::dates): refused here, so it never reaches the ledger.
    #[test]
    fn validity_outside_years_1_to_9999_is_refused() {
        use ::time::{Date, Month, Time};
        let at = |y: i32, m: Month, d: u8, t: Time| {
            Date::from_calendar_date(y, m, d)
                .unwrap()
                .with_time(t)
                .assume_utc()
        };
        let year0 = at(0, Month::June, 1, Time::MIDNIGHT);
        let forever = at(
            9999,
            Month::December,
            31,
            Time::from_hms(23, 59, 59).unwrap(),
        );
        let e = Certificate::from_der(&der(year0, forever)).unwrap_err();
        assert!(e.contains(crate::dates::OUT_OF_RANGE), "{e}");
        let year1 = at(1, Month::January, 1, Time::MIDNIGHT);
        let c = Certificate::from_der(&der(year1, forever)).unwrap();
        assert_eq!(crate::dates::show(c.not_after), "9999-12-31T23:59:59Z");
    }
}
