//! Property tests: no input makes the certificate loaders panic. Random bytes, and single/multiple
//! byte mutations and truncations of every real fixture (PEM, DER, Base64, PFX).

use hybrid_trust::cert;
use hybrid_trust::secret::SecretString;
use proptest::prelude::*;
use std::path::Path;

fn load_all_ways(data: &[u8]) {
    let p = Path::new("prop");
    if let Ok(l) = cert::load_bytes(data, p, &mut || Ok(None)) {
        let _ = l.key_matches();
        let opts = cert::CheckOptions {
            now: chrono::Utc::now(),
            sip_domain: Some("contoso.com".into()),
            horizon_days: 30,
            require_private_key: true,
        };
        let _ = cert::check(&l, &opts);
    }
    let _ = cert::load_bytes(data, p, &mut || {
        Ok(Some(SecretString::new("Passw0rd!".into())))
    });
}

fn fixtures() -> Vec<Vec<u8>> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs"));
    [
        "sfb.pem",
        "sfb.der",
        "sfb-bare.b64",
        "sfb-aes.pfx",
        "sfb-3des.pfx",
        "sfb-key-cert-chain.pem",
        "ec-p256-key-cert.pem",
        "sfb-chain.pfx",
    ]
    .iter()
    .map(|f| std::fs::read(dir.join(f)).unwrap())
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        load_all_ways(&data);
    }

    #[test]
    fn random_text_with_pem_markers_never_panics(body in "[A-Za-z0-9+/=\r\n:-]{0,400}", label in "(CERTIFICATE|PRIVATE KEY|RSA PRIVATE KEY|EC PRIVATE KEY|X)") {
        let text = format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n");
        load_all_ways(text.as_bytes());
    }

    #[test]
    fn mutated_fixtures_never_panic(which in 0usize..8, edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let mut data = fixtures()[which].clone();
        for (i, b) in edits {
            let i = i.index(data.len());
            data[i] = b;
        }
        load_all_ways(&data);
        let n = cut.index(data.len());
        load_all_ways(&data[..n]);
    }
}
