//! The emulator's own minimal JOSE: split and decode a compact JWS (RFC 7515), verify RS256/384/512
//! and PS256/384/512 with an RSA public key, and sign RS256 access tokens. Deliberately separate
//! from the client's JWT code so the two cannot share a bug.

use aws_lc_rs::signature::{self, RsaKeyPair, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

pub struct Jws {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

#[derive(Debug, PartialEq)]
pub enum JwsError {
    /// Not three dot-separated Base64url parts of JSON objects (with `=` padding where
    /// [`Padding::Refused`]).
    Malformed,
}

/// Whether a compact JWS may carry `=` padding in its Base64url segments. RFC 7515 §2 says
/// base64url "with all trailing '=' characters omitted"; what Microsoft's services do differs
/// by endpoint, and the emulator is strict only where a source says the service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Refused: Graph's addKey/removeKey proof ("Base64url segments must not carry `=` padding
    /// or Graph answers `Authentication_MissingOrMalformed`", docs/protocol.md §1.5, from
    /// GDC `concepts/application-rollkey-prooftoken.md`).
    Refused,
    /// Tolerated: the token endpoint's client assertions (docs/protocol.md §5.7: Microsoft's
    /// azure-identity for Python, async `CertificateCredential`, signs its assertion with
    /// `base64.urlsafe_b64encode`, padding kept, and Entra accepts it), and wherever no source
    /// says a service refuses padding.
    Tolerated,
}

/// Base64url that takes its segments with or without canonical `=` padding.
const URL_SAFE_PADDING_TOLERATED: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );

/// Decodes a compact JWS as the endpoint named by `padding` reads it. The signature is checked
/// over the segments as they were sent (padding included), as every verifier does.
pub fn decode(token: &str, padding: Padding) -> Result<Jws, JwsError> {
    let b64 = |p: &str| match padding {
        Padding::Refused => URL_SAFE_NO_PAD.decode(p),
        Padding::Tolerated => URL_SAFE_PADDING_TOLERATED.decode(p),
    };
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let obj = |p: &str| -> Result<Map<String, Value>, JwsError> {
        let bytes = b64(p).map_err(|_| JwsError::Malformed)?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(JwsError::Malformed),
        }
    };
    let header = obj(h)?;
    let claims = obj(c)?;
    let signature = b64(s).map_err(|_| JwsError::Malformed)?;
    Ok(Jws {
        header,
        claims,
        signing_input: format!("{h}.{c}"),
        signature,
    })
}

impl Jws {
    pub fn alg(&self) -> &str {
        self.header.get("alg").and_then(Value::as_str).unwrap_or("")
    }
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
    pub fn claim_i64(&self, name: &str) -> Option<i64> {
        match self.claims.get(name)? {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            _ => None,
        }
    }

    /// Verifies the signature with a PKCS#1 RSA public key. `None` when `alg` is not an RSA
    /// algorithm the emulator accepts.
    pub fn verify_rsa(&self, pkcs1_public: &[u8]) -> Option<bool> {
        let alg: &'static dyn VerificationAlgorithm = match self.alg() {
            "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
            "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
            "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
            "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
            "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
            "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        };
        Some(
            UnparsedPublicKey::new(alg, pkcs1_public)
                .verify(self.signing_input.as_bytes(), &self.signature)
                .is_ok(),
        )
    }
}

/// Signs `claims` with RS256 under a header carrying `kid` and `x5t`.
pub fn sign_rs256(key: &RsaKeyPair, x5t: &str, claims: &Value) -> String {
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5t": x5t, "kid": x5t});
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{h}.{c}");
    let mut sig = vec![0u8; key.public_modulus_len()];
    let rng = aws_lc_rs::rand::SystemRandom::new();
    // Signing with a valid key into a correctly sized buffer cannot fail.
    if key
        .sign(
            &signature::RSA_PKCS1_SHA256,
            &rng,
            input.as_bytes(),
            &mut sig,
        )
        .is_err()
    {
        sig.clear();
    }
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_malformed_tokens() {
        for t in [
            "",
            "a.b",
            "a.b.c.d",
            "e30.e30.=",
            "e30=.e30.AA",
            "W10.e30.AA",
        ] {
            assert!(decode(t, Padding::Refused).is_err(), "{t:?} accepted");
        }
        assert!(decode("e30.e30.", Padding::Refused).is_ok());
        for t in [
            "",
            "a.b",
            "a.b.c.d",
            "e30.e30.=",
            "W10.e30.AA",
            "e30==.e30.AA",
            "e3=0.e30.AA",
        ] {
            assert!(decode(t, Padding::Tolerated).is_err(), "{t:?} accepted");
        }
    }

    /// Issue 24, item 9: an assertion built as azure-identity's async `CertificateCredential`
    /// builds it (`base64.urlsafe_b64encode`: every segment padded, here header, claims and the
    /// 256-byte signature) decodes and verifies where padding is tolerated, and is still refused
    /// where a source says it is (Graph's addKey proof).
    #[test]
    fn a_padded_assertion_is_taken_at_the_token_endpoint_only() {
        use base64::engine::general_purpose::URL_SAFE;
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let key = RsaKeyPair::from_pkcs8(&kp.serialize_der()).unwrap();
        // Lengths that need padding: 1 and 2 bytes over a multiple of 3.
        let header = br#"{"alg":"PS256","typ":"JWT","x5t#S256":"abc"}"#.to_vec();
        let claims =
            br#"{"iss":"x","sub":"x","aud":"https://login/t/oauth2/v2.0/token","exp":1}"#.to_vec();
        assert!(!header.len().is_multiple_of(3) && !claims.len().is_multiple_of(3));
        let input = format!("{}.{}", URL_SAFE.encode(&header), URL_SAFE.encode(&claims));
        assert!(input.contains('='), "{input}");
        let mut sig = vec![0u8; key.public_modulus_len()];
        key.sign(
            &signature::RSA_PSS_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .unwrap();
        let token = format!("{input}.{}", URL_SAFE.encode(&sig));
        assert!(token.ends_with('='), "a 256-byte signature is padded too");
        let jws = decode(&token, Padding::Tolerated).expect("padded segments are taken");
        assert_eq!(jws.alg(), "PS256");
        assert_eq!(jws.claim_str("iss"), Some("x"));
        let pkcs1 = aws_lc_rs::signature::KeyPair::public_key(&key)
            .as_ref()
            .to_vec();
        assert_eq!(
            jws.verify_rsa(&pkcs1),
            Some(true),
            "signed over the padded text"
        );
        assert_eq!(
            decode(&token, Padding::Refused).err(),
            Some(JwsError::Malformed)
        );
    }

    #[test]
    fn signs_and_verifies_rs256() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let key = RsaKeyPair::from_pkcs8(&kp.serialize_der()).unwrap();
        let token = sign_rs256(&key, "abc", &serde_json::json!({"a": 1}));
        let jws = decode(&token, Padding::Refused).unwrap();
        let pkcs1 = aws_lc_rs::signature::KeyPair::public_key(&key)
            .as_ref()
            .to_vec();
        assert_eq!(jws.verify_rsa(&pkcs1), Some(true));
        let mut tampered = decode(&token, Padding::Refused).unwrap();
        tampered.signing_input.push('x');
        assert_eq!(tampered.verify_rsa(&pkcs1), Some(false));
    }
}
