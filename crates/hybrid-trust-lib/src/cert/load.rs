//! Loading a certificate (and its private key, when the file has one) from whatever an admin
//! exported: PEM (one or several blocks, any order, CRLF or LF), DER, bare Base64 (a `.cer`
//! "Base-64 encoded X.509" with or without armour), or PFX/PKCS#12 (AES or legacy RC2/3DES, empty
//! password, several bags). The format is sniffed from the content, never from the file name.

use super::certificate::Certificate;
use super::der;
use super::key::{KeyFormat, PrivateKey};
use crate::secret::SecretString;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::path::{Path, PathBuf};

/// Certificates and PFX files are a few KiB; anything over this is not one.
pub const MAX_FILE_BYTES: u64 = crate::paths::MAX_CERT_FILE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Pem,
    Der,
    Base64,
    Pfx,
}

impl SourceFormat {
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Pem => "PEM",
            SourceFormat::Der => "DER",
            SourceFormat::Base64 => "Base64",
            SourceFormat::Pfx => "PFX",
        }
    }
}

/// What a file held: the leaf certificate, the rest of the chain, and the private key if any.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub leaf: Certificate,
    pub chain: Vec<Certificate>,
    pub key: Option<PrivateKey>,
    pub format: SourceFormat,
}

impl Loaded {
    /// Whether the private key belongs to the leaf (`None` without a key or for an unreadable one).
    pub fn key_matches(&self) -> Option<bool> {
        self.key.as_ref().and_then(|k| k.matches(&self.leaf))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is a directory, not a certificate file")]
    IsDirectory { path: PathBuf },
    #[error("{path} is empty")]
    Empty { path: PathBuf },
    #[error("{path} is {size} bytes, too large for a certificate (limit {MAX_FILE_BYTES})")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path} is not a certificate: expected PEM, DER, Base64 or PFX/PKCS#12")]
    Unrecognized { path: PathBuf },
    #[error("{path}: PEM is malformed ({reason})")]
    BadPem { path: PathBuf, reason: String },
    #[error("{path}: certificate is malformed ({reason})")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path} holds a private key but no certificate")]
    KeyWithoutCertificate { path: PathBuf },
    #[error("{path} holds an encrypted PEM private key, which is not supported")]
    EncryptedPemKey { path: PathBuf },
    #[error("{path} is a password-protected PFX and no password was given")]
    PasswordRequired { path: PathBuf },
    #[error("wrong password for PFX {path}")]
    WrongPassword { path: PathBuf },
    #[error("{path}: PFX is malformed or uses an unsupported algorithm ({reason})")]
    BadPfx { path: PathBuf, reason: String },
    #[error("{path}: PFX holds no certificate")]
    PfxWithoutCertificate { path: PathBuf },
    #[error("{path} holds {count} private keys and none matches a certificate")]
    AmbiguousKey { path: PathBuf, count: usize },
    #[error("cannot read the password: {0}")]
    Password(String),
}

impl CertError {
    /// What the user should do about it.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            CertError::Io { .. } => "check the path and that you may read the file",
            CertError::IsDirectory { .. }
            | CertError::Empty { .. }
            | CertError::TooLarge { .. } => {
                "name the exported certificate file (.cer, .crt, .pem, .der, .pfx or .p12)"
            }
            CertError::Unrecognized { .. }
            | CertError::BadPem { .. }
            | CertError::BadCertificate { .. } => {
                "export the certificate again from the certificate store (MMC or Export-PfxCertificate)"
            }
            CertError::KeyWithoutCertificate { .. } => {
                "add the certificate to the file, or export a PFX with the key and certificate"
            }
            CertError::EncryptedPemKey { .. } => {
                "export a PFX instead (Export-PfxCertificate), or decrypt the key with openssl pkey"
            }
            CertError::PasswordRequired { .. } => {
                "give the password with --password-env VAR or --password-file PATH"
            }
            CertError::WrongPassword { .. } => {
                "check the password typed or given with --password-env / --password-file / --password-keyring (it is the PFX export password)"
            }
            CertError::BadPfx { .. } | CertError::PfxWithoutCertificate { .. } => {
                "export the PFX again with the certificate and its private key (Export-PfxCertificate -ChainOption BuildChain)"
            }
            CertError::AmbiguousKey { .. } => {
                "export a file with the certificate and its own private key only"
            }
            CertError::Password(_) => {
                "set the environment variable or file named by --password-env / --password-file"
            }
        })
    }
}

/// Reads and loads a certificate file. `password` is asked only for a protected PFX.
pub fn load_file(
    path: &Path,
    password: &mut dyn FnMut() -> Result<Option<SecretString>, CertError>,
) -> Result<Loaded, CertError> {
    let io = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(CertError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(CertError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
        });
    }
    // Refuses a FIFO or device (which would hang or never end) and caps the read.
    let bytes = crate::paths::read_limited(path, MAX_FILE_BYTES, "a certificate").map_err(io)?;
    load_bytes(&bytes, path, password)
}

/// A PFX password kept in a file: UTF-8, one trailing newline (LF or CRLF) ignored.
pub fn read_password_file(path: &Path) -> Result<SecretString, CertError> {
    let read_err = |e: String| CertError::Password(format!("{}: {e}", path.display()));
    let bytes =
        crate::paths::read_limited(path, crate::paths::MAX_PASSWORD_FILE, "a password file")
            .map_err(|e| read_err(e.to_string()))?;
    let mut s = String::from_utf8(bytes)
        .map_err(|_| read_err("the password is not UTF-8 text".to_string()))?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(SecretString::new(s))
}

/// Loads from bytes; `path` only names the source in errors.
pub fn load_bytes(
    bytes: &[u8],
    path: &Path,
    password: &mut dyn FnMut() -> Result<Option<SecretString>, CertError>,
) -> Result<Loaded, CertError> {
    let p = || path.to_path_buf();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(CertError::Empty { path: p() });
    }
    if contains(bytes, b"-----BEGIN") {
        return load_pem(bytes, path);
    }
    if bytes[0] == 0x30 {
        return load_binary(bytes, path, SourceFormat::Der, password);
    }
    // Bare Base64 (a .cer without armour, or a Base64 PFX): whitespace and CRLF allowed.
    if bytes.iter().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=') || b.is_ascii_whitespace()
    }) {
        let compact: Vec<u8> = bytes
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if let Some(decoded) = STANDARD
            .decode(&compact)
            .ok()
            .filter(|d| d.first() == Some(&0x30))
        {
            return load_binary(&decoded, path, SourceFormat::Base64, password);
        }
    }
    Err(CertError::Unrecognized { path: p() })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// DER of one certificate, or a PFX (both start with a SEQUENCE; a PFX's first element is the
/// INTEGER version 3, a certificate's is the tbsCertificate SEQUENCE).
fn load_binary(
    bytes: &[u8],
    path: &Path,
    format: SourceFormat,
    password: &mut dyn FnMut() -> Result<Option<SecretString>, CertError>,
) -> Result<Loaded, CertError> {
    if der::looks_like_pfx(bytes) {
        return load_pfx(bytes, path, password);
    }
    let leaf = Certificate::from_der(bytes).map_err(|reason| CertError::BadCertificate {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(Loaded {
        leaf,
        chain: Vec::new(),
        key: None,
        format,
    })
}

struct PemBlock {
    label: String,
    der: Vec<u8>,
}

fn parse_pem(text: &str, path: &Path) -> Result<Vec<PemBlock>, CertError> {
    let bad = |reason: String| CertError::BadPem {
        path: path.to_path_buf(),
        reason,
    };
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(|l| l.trim());
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            if l.starts_with("-----") {
                return Err(bad(format!("{label} block is not closed by {end}")));
            }
            if l.contains(':') {
                // RFC 1421 headers (Proc-Type, DEK-Info) mark an encrypted legacy key.
                if label.contains("PRIVATE KEY") {
                    return Err(CertError::EncryptedPemKey {
                        path: path.to_path_buf(),
                    });
                }
                continue;
            }
            body.push_str(l);
        }
        if !closed {
            return Err(bad(format!("{label} block has no {end} line")));
        }
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|e| bad(format!("{label} block is not valid Base64: {e}")))?;
        blocks.push(PemBlock {
            label: label.to_string(),
            der,
        });
    }
    Ok(blocks)
}

fn load_pem(bytes: &[u8], path: &Path) -> Result<Loaded, CertError> {
    let text = String::from_utf8_lossy(bytes);
    let blocks = parse_pem(&text, path)?;
    let mut certs = Vec::new();
    let mut keys = Vec::new();
    for b in blocks {
        match b.label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                certs.push(Certificate::from_der(&b.der).map_err(|reason| {
                    CertError::BadCertificate {
                        path: path.to_path_buf(),
                        reason,
                    }
                })?);
            }
            "PRIVATE KEY" => keys.push(PrivateKey::new(b.der, KeyFormat::Pkcs8)),
            "RSA PRIVATE KEY" => keys.push(PrivateKey::new(b.der, KeyFormat::Pkcs1)),
            "EC PRIVATE KEY" => keys.push(PrivateKey::new(b.der, KeyFormat::Sec1)),
            "ENCRYPTED PRIVATE KEY" => {
                return Err(CertError::EncryptedPemKey {
                    path: path.to_path_buf(),
                });
            }
            _ => {}
        }
    }
    assemble(certs, keys, path, SourceFormat::Pem)
}

fn load_pfx(
    bytes: &[u8],
    path: &Path,
    password: &mut dyn FnMut() -> Result<Option<SecretString>, CertError>,
) -> Result<Loaded, CertError> {
    use p12_keystore::error::Error as P12;
    let classify = |e: P12| match e {
        P12::MacError(_) | P12::UnpadError => CertError::WrongPassword {
            path: path.to_path_buf(),
        },
        other => CertError::BadPfx {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    };
    // Windows and OpenSSL both write password-less PFX files with an empty password.
    let archive = match p12_keystore::Pkcs12Archive::from_pkcs12(bytes, "") {
        Ok(a) => a,
        Err(e) => match classify(e) {
            CertError::WrongPassword { .. } => {
                let pw = password()?.ok_or_else(|| CertError::PasswordRequired {
                    path: path.to_path_buf(),
                })?;
                p12_keystore::Pkcs12Archive::from_pkcs12(bytes, pw.expose()).map_err(classify)?
            }
            other => return Err(other),
        },
    };
    let mut certs = Vec::new();
    for bag in &archive.certs {
        certs.push(Certificate::from_der(bag.cert.as_der()).map_err(|reason| {
            CertError::BadCertificate {
                path: path.to_path_buf(),
                reason,
            }
        })?);
    }
    if certs.is_empty() {
        return Err(CertError::PfxWithoutCertificate {
            path: path.to_path_buf(),
        });
    }
    let keys = archive
        .keys
        .iter()
        .map(|k| PrivateKey::new(k.key.as_der().to_vec(), KeyFormat::Pkcs8))
        .collect();
    assemble(certs, keys, path, SourceFormat::Pfx)
}

/// Picks the leaf: the certificate matching the private key when there is one; otherwise the
/// first certificate that issued none of the others and is not a CA.
fn assemble(
    mut certs: Vec<Certificate>,
    keys: Vec<PrivateKey>,
    path: &Path,
    format: SourceFormat,
) -> Result<Loaded, CertError> {
    if certs.is_empty() {
        return Err(if keys.is_empty() {
            CertError::Unrecognized {
                path: path.to_path_buf(),
            }
        } else {
            CertError::KeyWithoutCertificate {
                path: path.to_path_buf(),
            }
        });
    }
    let mut key = None;
    let mut leaf_index = None;
    for k in &keys {
        if let Some(i) = certs.iter().position(|c| k.matches(c) == Some(true)) {
            leaf_index = Some(i);
            key = Some(k.clone());
            break;
        }
    }
    if key.is_none() && !keys.is_empty() {
        if keys.len() > 1 {
            return Err(CertError::AmbiguousKey {
                path: path.to_path_buf(),
                count: keys.len(),
            });
        }
        // One key that matches nothing: keep it so the mismatch is reported as a finding.
        key = keys.into_iter().next();
    }
    let leaf_index = leaf_index.unwrap_or_else(|| {
        let issuer_of_another = |c: &Certificate| certs.iter().any(|o| o.issued_by(c));
        certs
            .iter()
            .position(|c| !c.is_ca && !issuer_of_another(c))
            .or_else(|| certs.iter().position(|c| !issuer_of_another(c)))
            .unwrap_or(0)
    });
    let leaf = certs.remove(leaf_index);
    Ok(Loaded {
        leaf,
        chain: certs,
        key,
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_loses_one_line_end_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        for (written, read) in [
            ("s3cret\n", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            ("s3cret\n\n", "s3cret\n"),
            (" s3 cret ", " s3 cret "),
        ] {
            std::fs::write(&p, written).unwrap();
            assert_eq!(read_password_file(&p).unwrap().expose(), read);
        }
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        let e = read_password_file(&p).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
    }
}
