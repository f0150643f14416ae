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
    /// Not three dot-separated Base64url parts of JSON objects (padding `=` is refused, as Entra
    /// refuses it in addKey proofs).
    Malformed,
}

pub fn decode(token: &str) -> Result<Jws, JwsError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let obj = |p: &str| -> Result<Map<String, Value>, JwsError> {
        let bytes = URL_SAFE_NO_PAD.decode(p).map_err(|_| JwsError::Malformed)?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(JwsError::Malformed),
        }
    };
    let header = obj(h)?;
    let claims = obj(c)?;
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwsError::Malformed)?;
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
            assert!(decode(t).is_err(), "{t:?} accepted");
        }
        assert!(decode("e30.e30.").is_ok());
    }

    #[test]
    fn signs_and_verifies_rs256() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let key = RsaKeyPair::from_pkcs8(&kp.serialize_der()).unwrap();
        let token = sign_rs256(&key, "abc", &serde_json::json!({"a": 1}));
        let jws = decode(&token).unwrap();
        let pkcs1 = aws_lc_rs::signature::KeyPair::public_key(&key)
            .as_ref()
            .to_vec();
        assert_eq!(jws.verify_rsa(&pkcs1), Some(true));
        let mut tampered = decode(&token).unwrap();
        tampered.signing_input.push('x');
        assert_eq!(tampered.verify_rsa(&pkcs1), Some(false));
    }
}
