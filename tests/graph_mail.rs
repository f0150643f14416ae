//! The Microsoft Graph mail channel against the emulator's `sendMail`: delivered as MIME with
//! plain-text and HTML alternatives, listed by `GET /_emulator/mail`; the refusals Graph gives for
//! a missing `Mail.Send`, a user without a mailbox and an unknown user, each with what to do; and
//! the emulator's own answers to raw requests (JSON form, wrong method, bad base64).

mod support;

use hybrid_trust::cloud::Cloud;
use hybrid_trust::config::Settings;
use hybrid_trust::http::HttpClient;
use hybrid_trust::notify::{GraphMail, Notifier};
use hybrid_trust::remind::{Digest, Due, Kind};
use hybrid_trust::secret::SecretString;
use hybrid_trust::sts::{AdminCredential, TokenProvider};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::Emu;

fn cloud(emu: &Emu, dir: &std::path::Path) -> Cloud {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, emu.running.ca_pem()).unwrap();
    let f = dir.join("cloud.json");
    std::fs::write(
        &f,
        json!({"name": "emulator", "login_url": emu.cloud.login_url, "graph_url": emu.cloud.graph_url, "acs_url": emu.cloud.acs_url, "exchange_url": emu.cloud.exchange_url, "ca_file": ca}).to_string(),
    )
    .unwrap();
    Cloud::from_file(&f).unwrap()
}

fn digest(tenant: &str) -> Digest {
    Digest::new(vec![Due {
        tenant: tenant.into(),
        tenant_id: None,
        kind: Kind::Expiry,
        credential: "k".into(),
        app_id: "00000004-0000-0ff1-ce00-000000000000".into(),
        thumbprint_sha1: "AB".repeat(20),
        ends: None,
        days_left: Some(12),
        threshold_days: 14,
        covers: vec![14],
        detail: "the key credential".into(),
        state: "due".into(),
        action: "renew within 12 days".into(),
        roll: None,
    }])
}

/// A graph_mail channel sending as `from`, signed in as the emulator's admin app with `secret`
/// (the identity options themselves are tested through the command line in tests/remind_cli.rs).
fn channel_with(emu: &Emu, dir: &std::path::Path, from: &str, secret: &str) -> Box<dyn Notifier> {
    let cloud = cloud(emu, dir);
    let s = Settings::parse(&format!(
        "[[reminders.graph_mail]]\nfrom = \"{from}\"\nto = [\"uc-admins@contoso.com\"]\ntenant = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"UNUSED\"\n",
        emu.tenant.domain, emu.tenant.admin.client_id
    ))
    .unwrap();
    let http = HttpClient::for_cloud(&cloud).unwrap();
    let tokens = TokenProvider::new(
        http.clone(),
        cloud.clone(),
        &emu.tenant.domain,
        AdminCredential::Secret {
            client_id: emu.tenant.admin.client_id.clone(),
            secret: SecretString::new(secret.to_string()),
        },
    );
    Box::new(GraphMail {
        channel: s.reminders.graph_mail[0].clone(),
        graph_url: cloud.graph_url.clone(),
        scope: cloud.graph_scope(),
        tokens,
        http,
    })
}

fn channel(emu: &Emu, dir: &std::path::Path, from: &str) -> Box<dyn Notifier> {
    channel_with(emu, dir, from, &emu.tenant.admin.client_secret)
}

/// The messages the emulator accepted, read at both addresses docs/contract.md can be read as
/// (`<control_url>/mail` and `<control_url>/_emulator/mail`), which must agree.
async fn messages(emu: &Emu) -> Vec<Value> {
    let list = emu.control_get("mail").await;
    assert_eq!(emu.control_get("_emulator/mail").await, list);
    list["messages"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_digest_is_delivered_with_text_and_html() {
    let emu = Emu::start().await;
    let dir = tempfile::tempdir().unwrap();
    let from = format!("noreply@{}", emu.tenant.domain);
    let ch = channel(&emu, dir.path(), &from);
    assert_eq!(ch.id(), format!("graph-mail:{from}"));
    let evil = "<b>fabrikam</b>.example.com";
    ch.send(&digest(evil), &[]).await.unwrap();
    let m = messages(&emu).await;
    assert_eq!(m.len(), 1, "{m:?}");
    let m = &m[0];
    assert_eq!(m["from"], json!(from));
    assert_eq!(m["to"], json!(["uc-admins@contoso.com"]));
    assert!(m["subject"].as_str().unwrap().contains(evil), "{m}");
    let text = m["body_text"].as_str().unwrap();
    assert!(
        text.contains("hybrid-trust renew --tenant <b>fabrikam</b>.example.com"),
        "{text}"
    );
    let html = m["body_html"].as_str().unwrap();
    assert!(
        html.contains("&lt;b&gt;fabrikam&lt;/b&gt;.example.com") && !html.contains("<b>fabrikam"),
        "{html}"
    );
    assert!(m["received_at"].as_str().is_some());
    // Per-tenant recipients replace the channel's.
    ch.send(&digest("x.example.com"), &["ops@fabrikam.com".to_string()])
        .await
        .unwrap();
    assert_eq!(messages(&emu).await[1]["to"], json!(["ops@fabrikam.com"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_name_the_cause_and_the_fix() {
    let emu = Emu::start().await;
    let dir = tempfile::tempdir().unwrap();
    let domain = emu.tenant.domain.clone();
    // A user without an Exchange Online mailbox.
    let e = channel(&emu, dir.path(), &format!("admin@{domain}"))
        .send(&digest("a.example.com"), &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("MailboxNotEnabledForRESTAPI") && e.contains("no Exchange Online mailbox"),
        "{e}"
    );
    // No such user.
    let e = channel(&emu, dir.path(), &format!("ghost@{domain}"))
        .send(&digest("a.example.com"), &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("ErrorInvalidUser") && e.contains("404"), "{e}");
    // The app without Mail.Send.
    let path = format!(
        "tenants/{domain}/servicePrincipals/{}/graphRoles",
        emu.tenant.admin.client_id
    );
    assert_eq!(
        emu.control(
            Method::PUT,
            &path,
            json!({"roles": ["Application.ReadWrite.All"]})
        )
        .await,
        StatusCode::NO_CONTENT
    );
    let e = channel(&emu, dir.path(), &format!("noreply@{domain}"))
        .send(&digest("a.example.com"), &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("403") && e.contains("ErrorAccessDenied") && e.contains("Mail.Send"),
        "{e}"
    );
    assert!(messages(&emu).await.is_empty(), "nothing was delivered");
    // A wrong secret never reaches Graph: the token is refused, and the secret is not shown.
    let e = channel_with(
        &emu,
        dir.path(),
        &format!("noreply@{domain}"),
        "not-the-secret",
    )
    .send(&digest("a.example.com"), &[])
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("no token") && !e.contains("not-the-secret"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_emulator_answers_raw_requests_as_graph_does() {
    let emu = Emu::start().await;
    let token = emu.admin_token().await;
    let url = format!(
        "{}/v1.0/users/noreply@{}/sendMail",
        emu.cloud.graph_url, emu.tenant.domain
    );
    // The JSON form.
    let body = json!({"message": {"subject": "hello", "body": {"contentType": "HTML", "content": "<p>hi</p>"}, "toRecipients": [{"emailAddress": {"address": "a@contoso.com"}}]}, "saveToSentItems": false});
    let r = emu
        .client
        .post(&url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.bytes().await.unwrap().is_empty());
    let m = messages(&emu).await;
    assert_eq!(m[0]["body_html"], json!("<p>hi</p>"));
    assert_eq!(m[0]["body_text"], Value::Null);
    // By object id as well as by UPN.
    let state = emu.control_get("state").await;
    let id = state["tenants"][0]["users"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let by_id = format!("{}/v1.0/users/{id}/sendMail", emu.cloud.graph_url);
    let r = emu
        .client
        .post(&by_id)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // No recipients.
    let none =
        json!({"message": {"subject": "x", "body": {"contentType": "Text", "content": "x"}}});
    let r = emu
        .client
        .post(&url)
        .bearer_auth(&token)
        .json(&none)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "ErrorInvalidRecipients"
    );
    // MIME that is not base64.
    let r = emu
        .client
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("%%%")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "ErrorMimeContentInvalidBase64String"
    );
    // GET is not sendMail; no token is 401.
    let r = emu
        .client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = emu.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(messages(&emu).await.len(), 2);
    // The list can be cleared between steps of a test.
    assert_eq!(
        emu.control(Method::DELETE, "mail", Value::Null).await,
        StatusCode::NO_CONTENT
    );
    assert!(messages(&emu).await.is_empty());
}

/// `remind` through the command line with a `[[reminders.graph_mail]]` channel: delivered once
/// (with Microsoft's dated changes in the same digest), not again on the next run; a sender
/// without a mailbox fails the run (exit 1) and is not marked sent; bad channels are refused
/// (exit 2, one line, a hint) before anything is sent.
#[tokio::test(flavor = "multi_thread")]
async fn remind_delivers_through_graph_mail_end_to_end() {
    let emu = Emu::start().await;
    let tool = support::Tool::for_emulator(&emu);
    let domain = emu.tenant.domain.clone();
    let config = tool.dir.path().join("config.toml");
    let write = |from: &str, extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[[reminders.graph_mail]]\nfrom = \"{from}\"\nto = [\"uc-admins@contoso.com\"]\ntenant = \"{domain}\"\nclient_id = \"{}\"\nclient_secret_env = \"HT_TEST_SECRET\"\n{extra}",
                emu.tenant.admin.client_id
            ),
        )
        .unwrap();
    };
    let remind = |args: &'static [&'static str]| {
        let mut c = tool.command();
        c.arg("--config").arg(&config).args(args);
        async move {
            tokio::task::spawn_blocking(move || c.output().unwrap())
                .await
                .unwrap()
        }
    };
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs/sfb.pem");
    let end = (chrono::Utc::now() + chrono::TimeDelta::days(10))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut add = tool.command();
    add.args([
        "tenant",
        "add",
        "fabrikam.com",
        "--cert",
        cert,
        "--credential-end",
        &end,
    ]);
    let o = tokio::task::spawn_blocking(move || add.output().unwrap())
        .await
        .unwrap();
    assert!(o.status.success(), "{}", support::stderr(&o));

    // A sender without an Exchange Online mailbox: exit 1, the cause, nothing marked sent.
    write(&format!("admin@{domain}"), "");
    let o = remind(&["remind", "--all"]).await;
    let e = support::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("MailboxNotEnabledForRESTAPI"), "{e}");
    let ledger = hybrid_trust::ledger::LedgerStore::in_dir(&tool.state_dir)
        .load()
        .unwrap();
    assert_eq!(ledger.tenants.len(), 1);
    assert!(
        ledger.tenants[0].reminders_sent.is_empty(),
        "nothing marked sent"
    );

    // The mailbox user: delivered, with the lapse and the advisories due.
    write(&format!("noreply@{domain}"), "");
    let o = remind(&["--output", "json", "remind", "--all"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", support::stderr(&o));
    let v = support::json_out(&o);
    assert_eq!(v["messages"], 1, "{v}");
    assert!(
        v["advisories"].as_array().is_some_and(|a| !a.is_empty()),
        "{v}"
    );
    let m = messages(&emu).await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["from"], json!(format!("noreply@{domain}")));
    assert!(m[0]["subject"].as_str().unwrap().contains("fabrikam.com"));
    let html = m[0]["body_html"].as_str().unwrap();
    assert!(
        html.contains("Microsoft&#39;s dated changes")
            || html.contains("Microsoft's dated changes"),
        "{html}"
    );
    assert!(
        m[0]["body_text"]
            .as_str()
            .unwrap()
            .contains("hybrid-trust renew --tenant fabrikam.com")
    );
    // Recorded: the lapse's threshold and each advisory, on this channel.
    let ledger = hybrid_trust::ledger::LedgerStore::in_dir(&tool.state_dir)
        .load()
        .unwrap();
    let sent = &ledger.tenants[0].reminders_sent;
    let channel = format!("graph-mail:noreply@{domain}");
    assert!(sent.iter().all(|r| r.channel == channel), "{sent:?}");
    assert!(
        sent.iter().any(|r| r.credential.starts_with("advisory/")),
        "{sent:?}"
    );
    assert!(
        sent.iter().any(|r| !r.credential.starts_with("advisory/")),
        "{sent:?}"
    );
    // Once per threshold: the next run sends nothing.
    let o = remind(&["--output", "json", "remind", "--all"]).await;
    assert_eq!(support::json_out(&o)["messages"], 0);
    assert_eq!(messages(&emu).await.len(), 1);

    // Bad channels and settings: exit 2, one error line with a hint, nothing sent.
    for (cfg, says) in [
        (
            "[[reminders.graph_mail]]\nto = [\"a@contoso.com\"]\ntenant = \"contoso.com\"\n",
            "from",
        ),
        (
            "[[reminders.graph_mail]]\nfrom = \"n@contoso.com\"\nto = [\"a@contoso.com\"]\ntenant = \"contoso.com\"\nclient_secret_env = \"X\"\n",
            "client_id",
        ),
        (
            "[advisories]\nacknowledged = [\"ews-gone\"]\n",
            "unknown advisory",
        ),
        (
            "[[reminders.graph_mail]]\nfrom = \"n@contoso.com\"\nto = [\"a@contoso.com\"]\ntenant = \"contoso.com\"\n",
            "no identity",
        ),
    ] {
        std::fs::write(&config, cfg).unwrap();
        let o = remind(&["remind", "--all"]).await;
        let e = support::stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert_eq!(
            e.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{e}"
        );
        assert!(e.contains(says) && e.contains("hint:"), "{e}");
    }
    // A channel whose secret variable is unset: exit 2 before any request.
    write(&format!("noreply@{domain}"), "");
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("HT_TEST_SECRET", "HT_UNSET_VAR"),
    )
    .unwrap();
    let o = remind(&["remind", "--all"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", support::stderr(&o));
    assert!(support::stderr(&o).contains("HT_UNSET_VAR"));
    assert_eq!(messages(&emu).await.len(), 1);
}
