//! Every certificate loader (PEM, DER, Base64, PFX with an empty password and with a password)
//! on arbitrary bytes: must never panic. Run: cargo +nightly fuzz run cert_load
#![no_main]

use hybrid_trust::cert;
use hybrid_trust::secret::SecretString;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-input");
    let mut no_password = || Ok(None);
    if let Ok(l) = cert::load_bytes(data, path, &mut no_password) {
        let _ = l.key_matches();
        let _ = cert::check(
            &l,
            &cert::CheckOptions {
                now: chrono::Utc::now(),
                sip_domain: Some("contoso.com".into()),
                horizon_days: 30,
                require_private_key: true,
            },
        );
    }
    let mut password = || Ok(Some(SecretString::new("Passw0rd!".into())));
    let _ = cert::load_bytes(data, path, &mut password);
});
