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
    /// The subject as Windows renders it, which is what Graph puts in a key's `displayName` when
    /// none is sent (real captures, fixtures/graph-captures: `CN=CLI-Login`,
    /// `O=Internet Widgits Pty Ltd, S=Some-State, C=AU`).
    pub subject_windows: String,
}

/// The short attribute names of Windows' `CertNameToStr` (X500 names, `S` for state).
fn windows_attr_name(oid: &str) -> String {
    let name = match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "SERIALNUMBER",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "S",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "T",
        "2.5.4.17" => "PostalCode",
        "2.5.4.42" => "G",
        "2.5.4.43" => "I",
        "1.2.840.113549.1.9.1" => "E",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return format!("OID.{oid}"),
    };
    name.to_string()
}

/// A value quoted as `CertNameToStr` quotes it: in double quotes (inner ones doubled) when it
/// holds a separator or special character or starts or ends with a space.
fn windows_value(v: &str) -> String {
    let special = v
        .chars()
        .any(|c| matches!(c, ',' | '+' | '=' | '"' | '\n' | '<' | '>' | '#' | ';'))
        || v.starts_with(' ')
        || v.ends_with(' ');
    if special {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// The subject in Windows' order (last RDN first), multi-valued RDNs joined with ` + `.
fn subject_windows(cert: &X509Certificate<'_>) -> String {
    let rdns: Vec<String> = cert
        .subject()
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let value = atv.as_str().map(windows_value).unwrap_or_else(|_| {
                        // Not a string type: Windows shows the DER as hex after '#'.
                        let hex: String = atv
                            .attr_value()
                            .data
                            .iter()
                            .map(|b| format!("{b:02X}"))
                            .collect();
                        format!("#{hex}")
                    });
                    format!(
                        "{}={value}",
                        windows_attr_name(&atv.attr_type().to_id_string())
                    )
                })
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(", ")
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
        subject_windows: subject_windows(&cert),
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn cert(b64: &str) -> CertInfo {
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.replace('\n', ""))
            .unwrap();
        parse(&der).unwrap()
    }

    /// Certificates azure-cli sent to the real Graph (fixtures/graph-captures, captures 0 and 3),
    /// and the display names Graph gave them.
    #[test]
    fn subjects_read_as_graph_wrote_them() {
        let widgits = cert(
            "MIIDazCCAlOgAwIBAgIUIp5vybhHfKN+ZKL28AntYKhlKXkwDQYJKoZIhvcNAQELBQAwRTELMAkGA1UEBhMCQVUxEzARBgNVBAgMClNvbWUtU3RhdGUxITAfBgNVBAoMGEludGVybmV0IFdpZGdpdHMgUHR5IEx0ZDAeFw0yMDA3MjIwNzE3NDdaFw00NzEyMDgwNzE3NDdaMEUxCzAJBgNVBAYTAkFVMRMwEQYDVQQIDApTb21lLVN0YXRlMSEwHwYDVQQKDBhJbnRlcm5ldCBXaWRnaXRzIFB0eSBMdGQwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQDMa00H+/p4RP4Eo//1J81Wowo4y1SKOJHbJ6T/lZ735FzFX52gdQ/7HalJOwQdbha78RPGA7bXxEmyEo+q3w+IMYzrqboX5S9yf0v1DZvja/VEMtUsq79d7NUUEd+smkuqDxDHFIkMeMM8cXy6tc+TPbc28BkQQiKbzOEZDwy4HPd7FCqCwwcZtgxfxFQx5A2DkAXtT53zQD8k1zY4UQWhkKDcgvINzQfYxJmUbXqH27MuJuejhpWLjmwEFCQtMJMrEv44YmlDzmL64iN5HFckO65ikV9fe9g9EcR5acSY2bsO8WyFYzTffVXFpFF011Vi4d/U0h4wSwj5KLMYMHkfAgMBAAGjUzBRMB0GA1UdDgQWBBQxgpSKG7fwIHEopaRA10GB8Z8SOTAfBgNVHSMEGDAWgBQxgpSKG7fwIHEopaRA10GB8Z8SOTAPBgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4IBAQAtI5vbHGxVV3qRtd9PEFe9dUb9Yv9YIa5RUd5l795cgr6qyELfg3xTPZbNf1oUHpGXNCfm1uqNTorIKOIEoTpA+STVwST/xcqzB6VjS31I/5IIrdK2NQenM+0DVJa+yGhX+zI3+X3cO2YbyLSKBYqdMsqgnMS/ZC0NnrvigHgq2SC4Vzg8yz5rorjvLJ6ndehtoWOtdCJKUTPihNh4e+GM2A7UNKdt5WKCiS/n/lShvm+8JEG2lXQmmxR6DOjdDyC4/6tf7Ln7YoZZ0q6ICp04oMF6bvgGosdOkQATW4X97EmcfIBfHPX2w/Xn47np2rZrlBMWCjI8gO6W8YQMu7AH",
        );
        assert_eq!(
            widgits.subject_windows,
            "O=Internet Widgits Pty Ltd, S=Some-State, C=AU"
        );
        assert_eq!(
            hex_upper(&widgits.sha1),
            "7AB4DD9219E5E03ECC025136572DFAA262EC85CB"
        );
        // An X.509 v1 certificate (no extensions), as Azure CLI makes for `--create-cert`.
        let v1 = cert(
            "MIICoTCCAYkCAgPoMA0GCSqGSIb3DQEBBQUAMBQxEjAQBgNVBAMMCUNMSS1Mb2dp
bjAiGA8yMDIyMDUwNzA2NTYzM1oYDzIwMjMwNTA3MDY1NjM1WjAUMRIwEAYDVQQD
DAlDTEktTG9naW4wggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQC2iyq2
ITkl77V03yVQSUqdCVwzQwDQqjJW6alBSJYu8xCiopyhs1Dc2mh1vs3+BJL/5TMx
afkHZOUMLFHnBtzlY1o5XPtYkf/ctB1Xf65F0N+vtqqwr8aHAqZO4hB4uJPz8Jp6
rxhZ/MM5KFGPiKO9C7EnlVcWLJESlFYrbclkuYCDezcso+PZs1V0s3v7ZQzhn0Fp
oFOK9+mgkfCodvsOKC3RMbdwshH2RKXiHSK2B/+IZDP9+Y2dYk960X5oa5oq6+KW
Nth8aSPGU/lD8b6TenDGrBl6rMHinDBdiYv6rtglmqCtEY37AE8owX/hUMeOYHbL
Tm3UR7AqQbTfHarlAgMBAAEwDQYJKoZIhvcNAQEFBQADggEBABg0uYiLj0DmQPic
YDoJutrrJroOIdQxZv/FBVUwjJtUqs+iOfrLeMaqKgEGzLKn05PG89gSwgYBBtHw
IONo/NuHUdOWoc98xqCa3KgZk0tmP5u7lWFJ3fI23DuMFvtac3SThXxgJSKUjtKE
lQ7xNCZkRRdXn2TcoUZ9UX5TNM+K4432ziYLtUGPGQ0cmg7AKL+GdonuiNJCZxkN
kMZyG3QpZk9BBHm+t+wJBCI4OiZpk9bWq/nUE2mqRA2orrEp4ShfI0bl442q59cR
A5RNAy40V7W/3Tx7pJ0cqRuN1m7dx3vJhgDCqfiQkU+Fkmm5YQzx1VY2mB4ursml
WY4VbWo=",
        );
        assert_eq!(v1.subject_windows, "CN=CLI-Login");
    }

    #[test]
    fn values_with_separators_are_quoted() {
        assert_eq!(windows_value("Contoso, Ltd"), "\"Contoso, Ltd\"");
        assert_eq!(windows_value("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(windows_value("plain"), "plain");
        assert_eq!(windows_attr_name("2.5.4.8"), "S");
        assert_eq!(windows_attr_name("1.2.3"), "OID.1.2.3");
    }
}
