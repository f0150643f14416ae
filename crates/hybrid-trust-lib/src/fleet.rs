//! Reading many tenants at once (`status --live`): a bounded number of tenants in flight, spread
//! over a few connection pools ("lanes") whose HTTP/2 connections multiplex the requests, and a
//! progress callback. Two requests per tenant and application in the common case: a token, then
//! one collection query for the keys (see `Graph::list_keys`).
//!
//! Connections: with ALPN the pool cannot know before the TLS handshake that a connection will
//! be HTTP/2, so requests started together each open one (a TCP and TLS handshake each, on both
//! sides) and all but one are thrown away. Each lane's first tenant therefore asks for its token
//! alone; the lane's other tenants start when that answer is in and share the connection. Each
//! lane is planned for [`STREAMS_PER_CONNECTION`] streams, the minimum RFC 9113 §6.5.2 asks
//! servers to allow; over HTTP/1.1 (a proxy that does not speak HTTP/2) the pool simply opens
//! more connections.

use crate::cloud::Cloud;
use crate::graph::{Graph, GraphError, KeyCredential};
use crate::http::HttpClient;
use crate::ledger::{CredentialRecord, TenantRecord};
use crate::sts::{AdminCredential, TokenProvider};
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use serde::Serialize;

/// The keys read from one tenant, per application.
#[derive(Debug, Clone)]
pub struct LiveKeys {
    pub apps: Vec<(String, Vec<KeyCredential>)>,
    pub tenant_id: Option<String>,
}

/// A difference between the ledger and the tenant.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Drift {
    pub app_id: String,
    pub thumbprint_sha1: String,
    pub end: Option<DateTime<Utc>>,
    /// `missing-in-tenant` (the ledger has it, the tenant does not) or `not-in-ledger`.
    pub kind: &'static str,
}

/// Concurrent streams one connection is planned to carry (RFC 9113 §6.5.2: "It is recommended
/// that this value be no smaller than 100").
pub const STREAMS_PER_CONNECTION: usize = 100;

/// Reads every tenant's keys with at most `concurrency` tenants in flight.
pub async fn read_all(
    tenants: &[TenantRecord],
    cloud: &Cloud,
    http: &HttpClient,
    credential: &AdminCredential,
    concurrency: usize,
    progress: &dyn crate::progress::Progress,
) -> Vec<Result<LiveKeys, GraphError>> {
    let total = tenants.len();
    let concurrency = concurrency.max(1);
    let lanes = concurrency
        .div_ceil(STREAMS_PER_CONNECTION)
        .clamp(1, total.max(1));
    let clients: Vec<HttpClient> = (0..lanes)
        .map(|i| match i {
            0 => http.clone(),
            _ => http.with_own_pool().unwrap_or_else(|_| http.clone()),
        })
        .collect();
    let opened: Vec<tokio::sync::OnceCell<()>> =
        (0..lanes).map(|_| tokio::sync::OnceCell::new()).collect();
    let scope = cloud.graph_scope();
    progress.start("reading tenants", total);
    let results: Vec<(usize, Result<LiveKeys, GraphError>)> =
        futures_util::stream::iter(tenants.iter().enumerate())
            .map(|(i, t)| {
                let scope = &scope;
                let (http, opened) = (&clients[i % lanes], &opened[i % lanes]);
                async move {
                    let name = t.tenant_id.clone().unwrap_or_else(|| t.domain.clone());
                    let tokens =
                        TokenProvider::new(http.clone(), cloud.clone(), &name, credential.clone());
                    // The lane's first tenant gets its token while the others wait (see above).
                    let mut mine = None;
                    opened
                        .get_or_init(|| async { mine = Some(tokens.token(scope).await) })
                        .await;
                    let token = match mine {
                        Some(r) => r,
                        None => tokens.token(scope).await,
                    };
                    let result = async {
                        let token = token.map_err(GraphError::Sts)?;
                        let tenant_id = crate::sts::unverified_claim(token.expose(), "tid");
                        let g = Graph::new(http, cloud, &tokens);
                        let mut apps = Vec::new();
                        for app in &t.app_ids {
                            apps.push((app.clone(), g.list_keys(app).await?.key_credentials));
                        }
                        Ok(LiveKeys { apps, tenant_id })
                    }
                    .await;
                    progress.done(&t.domain);
                    (i, result)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    progress.finish();
    let mut ordered: Vec<Option<Result<LiveKeys, GraphError>>> = (0..total).map(|_| None).collect();
    for (i, r) in results {
        ordered[i] = Some(r);
    }
    ordered.into_iter().flatten().collect()
}

/// The tenant record as the tenant shows it: the ledger's credentials replaced by the live keys
/// of the recorded certificates (any `Verify` certificate key when none is recorded), and the
/// drift between the two.
pub fn apply_live(
    t: &TenantRecord,
    live: &LiveKeys,
    now: DateTime<Utc>,
) -> (TenantRecord, Vec<Drift>) {
    let certs: Vec<&str> = t
        .cert
        .iter()
        .chain(t.next_cert.iter())
        .chain(t.previous_cert.iter())
        .map(|c| c.thumbprint_sha1.as_str())
        .collect();
    let mut rec = t.clone();
    if rec.tenant_id.is_none() {
        rec.tenant_id = live.tenant_id.clone();
    }
    rec.credentials.clear();
    for (app, keys) in &live.apps {
        for k in keys {
            let (Some(tp), Some(s), Some(e)) = (k.thumbprint(), k.start_date_time, k.end_date_time)
            else {
                continue;
            };
            // Only a `Verify` key lets Entra check the Front Ends' assertions (a `Sign` key of the
            // same certificate does not).
            if k.is_verify_cert() && (certs.is_empty() || certs.contains(&tp.as_str())) {
                rec.credentials.push(CredentialRecord {
                    app_id: app.clone(),
                    key_id: k.key_id.clone(),
                    thumbprint_sha1: tp,
                    start: s,
                    end: e,
                    recorded_at: now,
                });
            }
        }
    }
    let key = |c: &CredentialRecord| {
        (
            c.app_id.clone(),
            c.thumbprint_sha1.clone(),
            c.end.timestamp(),
        )
    };
    let live_set: Vec<_> = rec.credentials.iter().map(key).collect();
    let ledger_set: Vec<_> = t.credentials.iter().map(key).collect();
    let mut drift = Vec::new();
    for c in &t.credentials {
        if c.end > now && !live_set.contains(&key(c)) {
            drift.push(Drift {
                app_id: c.app_id.clone(),
                thumbprint_sha1: c.thumbprint_sha1.clone(),
                end: Some(c.end),
                kind: "missing-in-tenant",
            });
        }
    }
    for c in &rec.credentials {
        if !ledger_set.contains(&key(c)) {
            drift.push(Drift {
                app_id: c.app_id.clone(),
                thumbprint_sha1: c.thumbprint_sha1.clone(),
                end: Some(c.end),
                kind: "not-in-ledger",
            });
        }
    }
    (rec, drift)
}

/// Reads every tenant live and replaces each record by what the tenant shows
/// ([`apply_live`]); a tenant that cannot be read keeps its ledger record and has its error.
#[allow(clippy::too_many_arguments)]
pub async fn refresh(
    tenants: &mut [TenantRecord],
    cloud: &Cloud,
    http: &HttpClient,
    credential: &AdminCredential,
    concurrency: usize,
    progress: &dyn crate::progress::Progress,
    now: DateTime<Utc>,
) -> crate::status::Live {
    let results = read_all(tenants, cloud, http, credential, concurrency, progress).await;
    let mut live = crate::status::Live {
        drift: vec![Vec::new(); tenants.len()],
        errors: vec![None; tenants.len()],
        first_hint: None,
        foreign: vec![Vec::new(); tenants.len()],
    };
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(keys) => {
                // Against the ledger as it was: the live record's credentials are Graph's.
                live.foreign[i] = crate::credential::foreign::found(&tenants[i], &keys.apps);
                let (rec, d) = apply_live(&tenants[i], &keys, now);
                tenants[i] = rec;
                live.drift[i] = d;
            }
            Err(e) => {
                live.first_hint.get_or_insert_with(|| e.hint());
                live.errors[i] = Some(e.to_string());
            }
        }
    }
    live
}
