//! A private key held only in memory (PKCS#8, PKCS#1 or SEC1 DER), and whether it belongs to a
//! certificate.

use super::certificate::{Certificate, KeyType};
use super::der::{self, Pkcs8Alg};
use crate::secret::SecretBytes;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    Pkcs8,
    /// `-----BEGIN RSA PRIVATE KEY-----`
    Pkcs1,
    /// `-----BEGIN EC PRIVATE KEY-----`
    Sec1,
}

/// A private key. `Debug` shows only its format.
#[derive(Clone)]
pub struct PrivateKey {
    der: SecretBytes,
    format: KeyFormat,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({:?}, [redacted])", self.format)
    }
}

impl PrivateKey {
    pub fn new(der: Vec<u8>, format: KeyFormat) -> PrivateKey {
        PrivateKey {
            der: SecretBytes::new(der),
            format,
        }
    }

    pub fn format(&self) -> KeyFormat {
        self.format
    }

    /// The DER, for signing. Never print or log it.
    pub fn der(&self) -> &[u8] {
        self.der.expose()
    }

    /// Whether this key is the private half of `cert`'s public key. `None` when the key cannot be
    /// read (an unsupported algorithm).
    pub fn matches(&self, cert: &Certificate) -> Option<bool> {
        let (alg, inner, is_pkcs8) = match self.format {
            KeyFormat::Pkcs8 => {
                let (alg, inner) = der::pkcs8_parts(self.der())?;
                (alg, inner, true)
            }
            KeyFormat::Pkcs1 => (Pkcs8Alg::Rsa, self.der(), false),
            KeyFormat::Sec1 => (Pkcs8Alg::Ec, self.der(), false),
        };
        match alg {
            Pkcs8Alg::Rsa => {
                let (n, e) = der::rsa_n_e(inner, true)?;
                Some(cert.rsa_n_e().is_some_and(|(cn, ce)| cn == n && ce == e))
            }
            Pkcs8Alg::Ec => {
                if cert.key_type != KeyType::Ec {
                    return Some(false);
                }
                for alg in [
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                ] {
                    let kp = if is_pkcs8 {
                        EcdsaKeyPair::from_pkcs8(alg, self.der())
                    } else {
                        EcdsaKeyPair::from_private_key_der(alg, self.der())
                    };
                    if let Ok(kp) = kp {
                        return Some(kp.public_key().as_ref() == cert.public_key.as_slice());
                    }
                }
                None
            }
            Pkcs8Alg::Other => None,
        }
    }
}
