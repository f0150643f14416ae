//! The write workflows driven through the library, with no subprocess (issue 15): a tenant
//! session against the in-process emulator uploads, adds names, re-windows and rolls, records
//! the ledger, and asks its confirmation callback as the command line would.

mod support;

use chrono::{TimeDelta, Utc};
use hybrid_trust::clock::Clock;
use hybrid_trust::credential::{Approval, CredentialError, Outcome, standing};
use hybrid_trust::graph;
use hybrid_trust::ledger::{CertRecord, LedgerStore};
use hybrid_trust::renew::{self, Decision, Policy};
use hybrid_trust::session::keys::KeyOp;
use hybrid_trust::session::{Session, SessionError};
use hybrid_trust::sts::AdminCredential;
use support::*;

fn session(emu: &Emu, dir: &std::path::Path, clock: Clock, dry_run: bool) -> Session {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, emu.running.ca_pem()).unwrap();
    let cloud = support::emulated_cloud(&emu.cloud, ca);
    let http = hybrid_trust::http::HttpClient::for_cloud(&cloud).unwrap();
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let admin = AdminCredential::Secret {
        client_id: emu.tenant.admin.client_id.clone(),
        secret: hybrid_trust::secret::SecretString::new(emu.tenant.admin.client_secret.clone()),
    };
    Session::signed_in(
        cloud,
        http,
        &emu.tenant.domain,
        admin,
        state,
        clock,
        dry_run,
    )
}

fn cert_of(t: &TestCert) -> hybrid_trust::cert::Certificate {
    hybrid_trust::cert::Certificate::from_der(&t.der).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_names_rewindow_and_roll_through_the_library() {
    let emu = Emu::start().await;
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let tc = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(30),
        now + TimeDelta::days(700),
    );
    let cert = cert_of(&tc);
    let apps = vec![SFB.to_string()];

    // A dry run plans and changes nothing.
    let mut dry = session(&emu, dir.path(), Clock::System, true);
    let (s, e) = graph::window(
        cert.not_before,
        cert.not_after,
        None,
        Some(now + TimeDelta::days(20)),
        now,
    )
    .unwrap();
    let op = KeyOp::Upload(Box::new((
        graph::new_key(&cert, s, e),
        CertRecord::from_cert(&cert),
    )));
    let out = dry.change_keys(&apps, &op, &mut standing).await.unwrap();
    assert!(matches!(out[0].1, Outcome::Planned { .. }));
    assert!(
        emu.sp(SFB).await["keyCredentials"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A declined confirmation changes nothing and says so.
    let mut s1 = session(&emu, dir.path(), Clock::System, false);
    let mut asked = 0;
    let r = s1
        .change_keys(&apps, &op, &mut |_, _, _| {
            asked += 1;
            Approval::Refused
        })
        .await;
    assert_eq!(asked, 1);
    assert!(
        matches!(r, Err(SessionError::Credential(ref e)) if matches!(**e, CredentialError::Declined))
    );
    assert!(
        emu.sp(SFB).await["keyCredentials"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Approved: uploaded, read back, recorded in the ledger under the tenant id.
    let out = s1
        .change_keys(&apps, &op, &mut |_, _, _| Approval::Answered)
        .await
        .unwrap();
    assert!(matches!(out[0].1, Outcome::Applied { .. }));
    assert_eq!(s1.tenant_id.as_deref(), Some(emu.tenant.tenant_id.as_str()));
    let ledger = LedgerStore::in_dir(&dir.path().join("state"))
        .load()
        .unwrap();
    let t = ledger.tenant(&emu.tenant.domain).unwrap().clone();
    assert_eq!(t.tenant_id.as_deref(), Some(emu.tenant.tenant_id.as_str()));
    assert_eq!(t.credentials.len(), 1);
    assert_eq!(t.cert.as_ref().unwrap().thumbprint_sha1, tc.sha1_hex());

    // Names: added once, then present.
    let names = vec![format!("{SFB}/webext.contoso.com")];
    let c = s1
        .add_names(&names, None, &mut |_, _| Approval::Standing)
        .await
        .unwrap();
    assert_eq!(c.added, names);
    let c = s1
        .add_names(&names, None, &mut |_, _| Approval::Standing)
        .await
        .unwrap();
    assert_eq!(c.present, names);
    drop(s1);

    // The renewal is due (the key ends in 20 days): a re-window, decided and done in the library.
    let policy = Policy::default();
    let d = renew::decide(&t, None, Utc::now(), policy);
    assert!(matches!(d, Decision::Rewindow { .. }), "{d:?}");
    let mut s2 = session(&emu, dir.path(), Clock::System, false);
    let r = s2.renew(&t, d, None, policy).await.unwrap();
    assert_eq!(r.outcome.as_ref().ok().copied(), Some("applied"));
    let keys = emu.sp(SFB).await["keyCredentials"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(keys.len(), 1, "the old window retired: {keys:#?}");
    let ledger = LedgerStore::in_dir(&dir.path().join("state"))
        .load()
        .unwrap();
    let t = ledger.tenant(&emu.tenant.domain).unwrap().clone();
    assert!(t.credentials[0].end > now + TimeDelta::days(360));
    assert!(t.last_renewal.is_some());

    // A roll: the new certificate next to the old one, and the on-prem step written.
    let next_tc = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(900),
    );
    let next = cert_of(&next_tc);
    let d = renew::decide(&t, Some(&CertRecord::from_cert(&next)), Utc::now(), policy);
    assert!(matches!(d, Decision::Roll { .. }), "{d:?}");
    let r = s2.renew(&t, d, Some(&next), policy).await.unwrap();
    assert_eq!(r.outcome.as_ref().ok().copied(), Some("applied"));
    let script = std::fs::read_to_string(r.onprem_script.unwrap()).unwrap();
    assert!(script.contains(&next_tc.sha1_hex()));
    assert_eq!(
        emu.sp(SFB).await["keyCredentials"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let ledger = LedgerStore::in_dir(&dir.path().join("state"))
        .load()
        .unwrap();
    let t = ledger.tenant(&emu.tenant.domain).unwrap();
    assert_eq!(
        t.next_cert.as_ref().unwrap().thumbprint_sha1,
        next_tc.sha1_hex()
    );
}

/// The workflows take "now" from the session's clock: a session whose clock is a year ahead plans
/// windows from that moment (the emulator refuses nothing about a future start).
#[tokio::test(flavor = "multi_thread")]
async fn a_session_plans_on_its_own_clock() {
    let emu = Emu::start().await;
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let tc = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(30),
        now + TimeDelta::days(1400),
    );
    let cert = cert_of(&tc);
    let later = Clock::Shifted(TimeDelta::days(200));
    let mut s = session(&emu, dir.path(), later, false);
    let t0 = later.now();
    let (start, end) = graph::window(cert.not_before, cert.not_after, None, None, t0).unwrap();
    let op = KeyOp::Upload(Box::new((
        graph::new_key(&cert, start, end),
        CertRecord::from_cert(&cert),
    )));
    let out = s
        .change_keys(&[SFB.to_string()], &op, &mut standing)
        .await
        .unwrap();
    let Outcome::Applied { plan, .. } = &out[0].1 else {
        panic!("not applied")
    };
    let sent = plan.added.as_ref().unwrap().start_date_time.unwrap();
    assert!(
        sent >= t0 && sent < t0 + TimeDelta::minutes(1),
        "{sent} vs {t0}"
    );
    let audit = std::fs::read_to_string(dir.path().join("state/audit.log")).unwrap();
    let ts: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    let ts = chrono::DateTime::parse_from_rfc3339(ts["ts"].as_str().unwrap()).unwrap();
    assert!(
        ts.with_timezone(&Utc) > now + TimeDelta::days(199),
        "audited on the session's clock: {ts}"
    );
}
