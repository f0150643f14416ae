//! Capture replay for `applications` (issue 27): every request Azure CLI's recorder captured
//! against the real Microsoft Graph on `/v1.0/applications` (fixtures/graph-captures/
//! azure-cli-graph-applications.json, untrimmed: 72 `POST`s, 69 `GET`s, 16 `PATCH`es) is sent
//! to the emulator (creations, then PATCHes, then reads), with the ids Graph gave mapped to the emulator's, and its
//! answers are compared with Graph's: status codes, the JSON shape of every answer (property
//! names and value types, recursively; ids and dates normalised), the `@odata.context`, Graph's
//! error bodies word for word, and the key credentials exactly.
//!
//! The emulator answers with the newest property set (2025 captures); [`ADDED_SINCE`] names the
//! properties Graph added over the years the captures span, which older answers lack.

mod support;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use support::*;

const CAPTURES: &str = include_str!("../fixtures/graph-captures/azure-cli-graph-applications.json");

/// Properties Graph added between the 2022 and the 2025 captures.
const ADDED_SINCE: &[&str] = &[
    "$.nativeAuthenticationApisEnabled",
    "$.uniqueName",
    "$.samlMetadataUrl",
    "$.servicePrincipalLockConfiguration",
    "$.requestSignatureVerification",
    "$.web.redirectUriSettings",
];

/// Differences in reads after writes the captures do not hold (see the test).
const UNCAPTURED_WRITES: &[&str] = &[
    "$.isDeviceOnlyAuthSupported: Graph sent boolean, the emulator null",
    "$.groupMembershipClaims: Graph sent string, the emulator null",
];

#[derive(Debug, Deserialize)]
struct Capture {
    capture_id: u32,
    source: String,
    method: String,
    uri: String,
    #[serde(default)]
    request_body: Option<String>,
    status: u16,
    #[serde(default)]
    response_body: Option<String>,
}

impl Capture {
    fn rest(&self) -> &str {
        self.uri
            .split_once("/v1.0/")
            .map(|(_, r)| r)
            .unwrap_or_default()
    }
    fn request(&self) -> Option<Value> {
        self.request_body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
    }
    fn response(&self) -> Value {
        self.response_body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null)
    }
}

fn is_guid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

fn is_date(s: &str) -> bool {
    let s = s.strip_suffix('Z').unwrap_or(s);
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
}

fn normalise(v: &Value) -> Value {
    match v {
        Value::String(s) if is_guid(s) => json!("<guid>"),
        Value::String(s) if is_date(s) => json!("<date>"),
        Value::String(s) => json!(
            s.split('\'')
                .map(|w| if is_guid(w) { "<guid>" } else { w })
                .collect::<Vec<_>>()
                .join("'")
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), normalise(v))).collect())
        }
        other => other.clone(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn compare_shape(path: &str, real: &Value, emu: &Value, diffs: &mut Vec<String>) {
    match (real, emu) {
        (Value::Object(r), Value::Object(e)) => {
            for k in r.keys().filter(|k| !e.contains_key(*k)) {
                diffs.push(format!(
                    "{path}.{k}: in Graph's answer, missing in the emulator's"
                ));
            }
            for k in e.keys().filter(|k| !r.contains_key(*k)) {
                let p = format!("{path}.{k}");
                if !ADDED_SINCE.contains(&p.as_str()) {
                    diffs.push(format!("{p}: in the emulator's answer, not in Graph's"));
                }
            }
            for (k, rv) in r {
                if let Some(ev) = e.get(k) {
                    compare_shape(&format!("{path}.{k}"), rv, ev, diffs);
                }
            }
        }
        (Value::Array(r), Value::Array(e)) => {
            if r.len() != e.len() {
                diffs.push(format!(
                    "{path}: {} elements in Graph's, {} in the emulator's",
                    r.len(),
                    e.len()
                ));
            }
            for (i, (rv, ev)) in r.iter().zip(e).enumerate() {
                compare_shape(&format!("{path}[{i}]"), rv, ev, diffs);
            }
        }
        (r, e) if type_name(r) != type_name(e) => diffs.push(format!(
            "{path}: Graph sent {}, the emulator {}",
            type_name(r),
            type_name(e)
        )),
        _ => {}
    }
}

/// The object(s) of an answer, collection or single, so `$.value[i]` compares like `$`.
fn objects(v: &Value) -> Vec<Value> {
    match v["value"].as_array() {
        Some(a) => a.clone(),
        None => vec![v.clone()],
    }
}

/// Graph's collection properties are sets: a read may list them in another order than they
/// were written (a POST answers in the order sent, a later GET in the directory's). Sorted on
/// both sides before comparing.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Array(a) => {
            let mut items: Vec<Value> = a.iter().map(sorted).collect();
            items.sort_by_key(|x| x.to_string());
            Value::Array(items)
        }
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), sorted(v))).collect()),
        other => other.clone(),
    }
}

fn context_path(v: &Value) -> String {
    v["@odata.context"]
        .as_str()
        .and_then(|c| c.split_once("/v1.0/"))
        .map(|(_, p)| p.to_string())
        .unwrap_or_default()
}

/// When a capture happened, as far as its dates tell (the latest date in its request and
/// answer: `createdDateTime` and key start dates); None for an error without dates.
fn happened_at(c: &Capture) -> Option<DateTime<Utc>> {
    fn dates(v: &Value, out: &mut Vec<DateTime<Utc>>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    match (k.as_str(), v.as_str()) {
                        ("createdDateTime" | "startDateTime", Some(d)) => {
                            out.extend(d.parse::<DateTime<Utc>>().ok())
                        }
                        _ => dates(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| dates(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    dates(&c.response(), &mut out);
    dates(&c.request().unwrap_or(Value::Null), &mut out);
    // Whole seconds: a POST answers `createdDateTime` with a fraction, later reads without.
    out.into_iter()
        .max()
        .and_then(|d| DateTime::from_timestamp(d.timestamp(), 0))
}

fn set_clock_offset(at: DateTime<Utc>) -> Value {
    json!({"offset_secs": (at - Utc::now()).num_seconds()})
}

#[tokio::test]
async fn every_applications_capture_is_replayed_with_grahps_status_shape_and_keys() {
    let mut all: Vec<Capture> = serde_json::from_str(CAPTURES).unwrap();
    // The file groups the captures by method: they are replayed in the order they happened,
    // which the dates they carry tell (an application's creation, the start of the keys a
    // PATCH sends or a read shows), a creation before a PATCH before a read at the same time.
    all.sort_by_key(|c| {
        let rank = match c.method.as_str() {
            "POST" => 0,
            "PATCH" => 1,
            _ => 2,
        };
        (happened_at(c), rank)
    });
    let count = |m: &str| all.iter().filter(|c| c.method == m).count();
    assert_eq!((count("POST"), count("GET"), count("PATCH")), (72, 69, 16));
    let emu = Emu::start().await;
    let token = emu.admin_token().await;
    // Graph's ids (object id and appId) mapped to the emulator's.
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut replayed = 0;
    let mut old_defaults = 0;
    let mut uncaptured = 0;
    // The emulator's object ids of the applications created.
    let mut created: Vec<String> = Vec::new();
    for c in &all {
        let real = c.response();
        let mut path = c.rest().to_string();
        for (real_id, emu_id) in &ids {
            path = path.replace(real_id.as_str(), emu_id);
        }
        // The clock at the capture's time, so the keys the requests carry are current.
        let at = objects(&real)
            .first()
            .and_then(|o| o["createdDateTime"].as_str())
            .and_then(|d| d.parse::<DateTime<Utc>>().ok())
            .or_else(|| {
                c.request()?["keyCredentials"][0]["startDateTime"]
                    .as_str()?
                    .parse()
                    .ok()
            });
        if let Some(at) = at.filter(|_| c.method != "GET") {
            assert_eq!(
                emu.control(Method::POST, "clock", set_clock_offset(at))
                    .await,
                200
            );
        }
        let t = if c.status == 403 {
            // Azure CLI's test identity could not read applications: the same answer to a
            // token without the permission.
            let p = format!(
                "tenants/{}/servicePrincipals/{}/graphRoles",
                emu.tenant.tenant_id, emu.tenant.admin.client_id
            );
            assert_eq!(
                emu.control(Method::PUT, &p, json!({"roles": []})).await,
                204
            );
            let t = emu.admin_token().await;
            let all_roles = json!({"roles": ["Application.ReadWrite.All", "Policy.Read.All"]});
            assert_eq!(emu.control(Method::PUT, &p, all_roles).await, 204);
            t
        } else {
            token.clone()
        };
        let method = Method::from_bytes(c.method.as_bytes()).unwrap();
        let (status, _, emu_v) = emu.graph_as(&t, method, &path, c.request()).await;
        assert_eq!(
            status.as_u16(),
            c.status,
            "capture {} {} {path}: {emu_v}",
            c.capture_id,
            c.method
        );
        if c.status >= 400 {
            assert_eq!(
                normalise(&real),
                normalise(&emu_v),
                "capture {}",
                c.capture_id
            );
            replayed += 1;
            continue;
        }
        if c.status == 204 {
            replayed += 1;
            continue;
        }
        assert_eq!(
            context_path(&real),
            context_path(&emu_v),
            "capture {}",
            c.capture_id
        );
        let (r_objs, e_objs) = (objects(&real), objects(&emu_v));
        assert_eq!(
            r_objs.len(),
            e_objs.len(),
            "capture {} {path}: {emu_v}",
            c.capture_id
        );
        for (r, e) in r_objs.iter().zip(&e_objs) {
            let (r, e) = (&sorted(r), &sorted(e));
            if c.method == "POST" {
                created.push(e["id"].as_str().unwrap().to_string());
                for k in ["id", "appId"] {
                    ids.insert(
                        r[k].as_str().unwrap().to_string(),
                        e[k].as_str().unwrap().to_string(),
                    );
                }
            }
            let mut diffs = Vec::new();
            compare_shape("$", &normalise(r), &normalise(e), &mut diffs);
            // Graph's default audience changed in 2024: before, an application created without
            // one was AzureADandPersonalMicrosoftAccount with v2 tokens; the emulator answers as
            // Graph does now (AzureADMyOrg, no token version).
            let old_default = r["signInAudience"] == "AzureADandPersonalMicrosoftAccount"
                && e["signInAudience"] == "AzureADMyOrg";
            if old_default {
                diffs.retain(|d| {
                    d != "$.api.requestedAccessTokenVersion: Graph sent number, the emulator null"
                });
                old_defaults += 1;
            } else {
                assert_eq!(
                    r["signInAudience"], e["signInAudience"],
                    "capture {}",
                    c.capture_id
                );
            }
            // Written by requests the recordings hold but the captures leave out (`az ad app
            // update --set …` carries no key credentials); written here, the emulator returns
            // them (the end of this test).
            if c.method == "GET" && c.source.contains("test_app_scenario.yaml") {
                let before = diffs.len();
                diffs.retain(|d| !UNCAPTURED_WRITES.contains(&d.as_str()));
                uncaptured += before - diffs.len();
            }
            assert!(
                diffs.is_empty(),
                "capture {} {} {path}: shapes differ:\n{}",
                c.capture_id,
                c.method,
                diffs.join("\n")
            );
            // The keys exactly as Graph returned them (client-chosen keyIds, Graph-filled names).
            assert_eq!(
                r["keyCredentials"], e["keyCredentials"],
                "capture {}",
                c.capture_id
            );
            assert_eq!(
                r["displayName"], e["displayName"],
                "capture {}",
                c.capture_id
            );
        }
        replayed += 1;
    }
    assert_eq!(replayed, all.len());
    assert!(
        old_defaults > 0 && old_defaults < all.len(),
        "{old_defaults}"
    );
    assert_eq!(
        uncaptured, 18,
        "the reads after writes the captures leave out"
    );
    // Those properties written: the emulator returns them.
    let id = &created[0];
    let (s, _, v) = emu
        .graph_as(
            &token,
            Method::PATCH,
            &format!("applications/{id}"),
            Some(json!({"isDeviceOnlyAuthSupported": true, "groupMembershipClaims": "All"})),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (_, _, v) = emu
        .graph_as(&token, Method::GET, &format!("applications/{id}"), None)
        .await;
    assert_eq!(
        (&v["isDeviceOnlyAuthSupported"], &v["groupMembershipClaims"]),
        (&json!(true), &json!("All"))
    );
}
