//! The on-prem OAuthTokenIssuer certificate: loading every format admins export (PEM, DER, bare
//! Base64 `.cer`, PFX/PKCS#12), the facts Windows and Entra show (thumbprint, `x5t`,
//! `x5t#S256`, validity), the OAuthTokenIssuer findings, and Base64/`.cer` export.
//!
//! Owns no I/O beyond reading the named file in [`load_file`] (and a password file in
//! [`read_password_file`]), never prints ([`report`] renders what `cert inspect` shows), and
//! keeps private keys in [`crate::secret::SecretBytes`] so they cannot reach `Debug`, `Display`
//! or logs.
//! Requirements for the certificate come from SFBDOCS `assign-a-server-to-server-certificate.md`
//! (same certificate on all Front Ends, RSA ≥ 2048 bits, SIP domain in the subject) and
//! `stage-av-and-oauth-certificates.md`.

mod certificate;
mod der;
mod export;
mod findings;
mod key;
mod load;
pub mod report;

pub use certificate::{Certificate, KeyType, hex_upper};
pub use export::{base64_der, pem_armour};
pub use findings::{CheckOptions, Finding, Severity, check};
pub use key::{KeyFormat, PrivateKey};
pub use load::{
    CertError, Loaded, MAX_FILE_BYTES, SourceFormat, load_bytes, load_file, read_password_file,
};
pub use report::Inspection;
