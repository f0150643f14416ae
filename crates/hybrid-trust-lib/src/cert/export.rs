//! Export of the public certificate: bare one-line Base64 of the DER (Graph's `key`, Windows'
//! `GetRawCertData`) and "Base-64 encoded X.509 (.CER)" as Windows' certificate export writes it:
//! PEM armour, 64-column lines, CRLF line ends.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub fn base64_der(der: &[u8]) -> String {
    STANDARD.encode(der)
}

pub fn pem_armour(der: &[u8]) -> String {
    let b64 = base64_der(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 * 2 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\r\n");
    for chunk in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out.push_str("-----END CERTIFICATE-----\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armour_has_64_column_crlf_lines() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let pem = pem_armour(&der);
        let lines: Vec<&str> = pem.split("\r\n").collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert!(lines[1..lines.len() - 2].iter().all(|l| l.len() <= 64));
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[lines.len() - 2], "-----END CERTIFICATE-----");
        let body: String = lines[1..lines.len() - 2].concat();
        assert_eq!(STANDARD.decode(body).unwrap(), der);
    }
}
