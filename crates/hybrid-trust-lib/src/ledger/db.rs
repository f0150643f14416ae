//! The ledger in the team's PostgreSQL database (`--state-url`): tenant records as JSONB rows in
//! the format-2 shape the files hold, read and written through the connections and locks of
//! [`crate::state::pg`], which knows no ledger type.

use super::store::{self, Damaged, LedgerError, key_of};
use super::{FORMAT, Ledger, TenantRecord};
use crate::state::StateError;
use crate::state::pg::{Conn, PgState, Row, lost, runtime, write_rows, write_rows_and_commit};
use std::path::PathBuf;
use std::time::Duration;
use tokio_postgres::types::Type;

// The hot statements are prepared once per pooled connection (`Conn::statement`).
const TEXT: Type = Type::TEXT;
const INT8: Type = Type::INT8;

impl PgState {
    /// Every tenant, in the order they were added; rows that do not parse are left out and
    /// listed as damaged (as the file store does).
    pub fn load(&self) -> Result<Ledger, LedgerError> {
        let i = self.inner.clone();
        let rows = self
            .block(async move {
                // One retry on a new connection when the kept one was closed (a restarted server);
                // the loop ends only by returning.
                let mut retried = false;
                loop {
                    let c = i.get().await?;
                    match c
                        .query(
                            "SELECT key, domain, record::text FROM tenants ORDER BY seq, domain",
                            &[],
                        )
                        .await
                    {
                        Ok(rows) => {
                            i.put(c);
                            return Ok(rows
                                .into_iter()
                                .map(|r| {
                                    (
                                        r.get::<_, String>(0),
                                        r.get::<_, String>(1),
                                        r.get::<_, String>(2),
                                    )
                                })
                                .collect::<Vec<_>>());
                        }
                        Err(e) if !retried && lost(&e) => retried = true,
                        Err(e) => return Err(i.err(e)),
                    }
                }
            })
            .map_err(LedgerError::from)?;
        let (mut tenants, mut damaged) = (Vec::new(), Vec::new());
        for (key, domain, text) in rows {
            match self.parse(&key, &text) {
                Ok(t) => tenants.extend(t),
                Err(e) => damaged.push(self.damaged(&key, &domain, &e)),
            }
        }
        Ok(Ledger {
            format: FORMAT,
            tenants,
            damaged,
        })
    }

    fn parse(&self, key: &str, text: &str) -> Result<Option<TenantRecord>, LedgerError> {
        Ok(store::parse(text.as_bytes(), &self.inner.pseudo_path(key))?
            .tenants
            .into_iter()
            .next())
    }

    fn damaged(&self, key: &str, domain: &str, e: &LedgerError) -> Damaged {
        Damaged {
            path: self.inner.pseudo_path(key),
            tenant: domain.to_string(),
            error: e.to_string(),
            hint: match e {
                LedgerError::TooNew { .. } => e.hint(),
                _ => format!(
                    "mend the row (SELECT record FROM {}.tenants WHERE key = '{key}'), or remove it and record the tenant again with hybrid-trust tenant add {domain}",
                    self.inner.url.schema
                ),
            },
            bad_input: matches!(e, LedgerError::DateOutOfRange { .. }),
        }
    }

    /// One tenant's record, found by `name` (domain or id) or `tenant_id` (one statement).
    pub async fn tenant_async(
        &self,
        name: &str,
        tenant_id: Option<&str>,
    ) -> Result<Option<TenantRecord>, LedgerError> {
        let i = self.inner.clone();
        let (n, id) = (name.to_string(), tenant_id.map(str::to_string));
        let row = self
            .run(async move {
                // One retry on a new connection when the kept one was closed (a restarted server);
                // the loop ends only by returning.
                let mut retried = false;
                loop {
                    let c = i.get().await?;
                    let r = async {
                        // find_key's choice and the row in one statement.
                        let st = c
                            .statement(
                                "SELECT key, record::text FROM tenants WHERE key = $1 OR lower(tenant_id) = $2 \
                                 OR ($3 <> '' AND lower(tenant_id) = $3) ORDER BY (key = $1) DESC, seq LIMIT 1",
                                &[TEXT, TEXT, TEXT],
                            )
                            .await?;
                        let (own, name_l, id_l) = find_args(&n, id.as_deref());
                        let row = c.query_opt(&st, &[&own, &name_l, &id_l]).await?;
                        Ok::<_, tokio_postgres::Error>(
                            row.map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))),
                        )
                    }
                    .await;
                    match r {
                        Ok(v) => {
                            i.put(c);
                            return Ok(v);
                        }
                        Err(e) if !retried && lost(&e) => retried = true,
                        Err(e) => return Err(i.err(e)),
                    }
                }
            })
            .await?;
        let Some((key, text)) = row else {
            return Ok(None);
        };
        Ok(self
            .parse(&key, &text)?
            .filter(|t| t.is(name) || tenant_id.is_some_and(|id| t.is(id))))
    }

    /// [`crate::ledger::LedgerStore::update`]: one transaction, the record's key locked, the
    /// row read afresh, `f` applied, what changed written; nothing is written if any step fails.
    /// The transaction runs on the client's runtime, `f` in the caller's task between its read
    /// and its write.
    pub async fn update_async<T>(
        &self,
        name: &str,
        tenant_id: Option<&str>,
        timeout: Duration,
        f: impl FnOnce(&mut Ledger) -> T,
    ) -> Result<T, LedgerError> {
        type Fetched = Result<(String, Option<String>), StateError>;
        let (rec_tx, rec_rx) = tokio::sync::oneshot::channel::<Fetched>();
        let (chg_tx, chg_rx) = tokio::sync::oneshot::channel::<(Vec<Row>, Vec<String>)>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<(), StateError>>();
        let i = self.inner.clone();
        let (n, id) = (name.to_string(), tenant_id.map(str::to_string));
        let ledger_key = i.lock_key("ledger", "");
        let timeout_ms = timeout.as_millis().clamp(1, i32::MAX as u128);
        let rt = runtime().map_err(|reason| self.query_error(reason))?;
        rt.spawn(async move {
            let mut attempt = 0;
            let (c, key, text) = loop {
                let c = match i.get().await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = rec_tx.send(Err(e));
                        return;
                    }
                };
                let r = async {
                    // Numbers only in this text (no value from outside): one round trip.
                    c.batch_execute(&format!(
                        "BEGIN; SET LOCAL lock_timeout = {timeout_ms}; \
                         SELECT pg_advisory_xact_lock_shared({ledger_key})"
                    ))
                    .await?;
                    let key = find_key(&c, &n, id.as_deref()).await?;
                    // Its own statement, so that the read below sees what the last holder wrote.
                    let st = c
                        .statement("SELECT pg_advisory_xact_lock($1)", &[INT8])
                        .await?;
                    c.execute(&st, &[&i.lock_key("record", &key)]).await?;
                    let st = c
                        .statement("SELECT record::text FROM tenants WHERE key = $1", &[TEXT])
                        .await?;
                    let row = c.query_opt(&st, &[&key]).await?;
                    Ok::<_, tokio_postgres::Error>((key, row.map(|r| r.get::<_, String>(0))))
                }
                .await;
                match r {
                    Ok((key, text)) => break (c, key, text),
                    Err(e) if attempt == 0 && lost(&e) => attempt += 1,
                    Err(e) => {
                        let _ = c.batch_execute("ROLLBACK").await;
                        i.put(c);
                        let _ = rec_tx.send(Err(i.err(e)));
                        return;
                    }
                }
            };
            let _ = rec_tx.send(Ok((key, text)));
            let r = match chg_rx.await {
                // The caller gave up (a record it could not read): nothing is written.
                Err(_) => c.batch_execute("ROLLBACK").await.map_err(|e| i.err(e)),
                Ok((rows, deletes)) => {
                    let r = write_rows_and_commit(&c, rows, deletes, &i.host).await;
                    if r.is_err() {
                        let _ = c.batch_execute("ROLLBACK").await;
                    }
                    r.map_err(|e| i.err(e))
                }
            };
            i.put(c);
            let _ = done_tx.send(r);
        });
        let (key, text) = rec_rx
            .await
            .map_err(|_| self.query_error("the database task stopped".into()))??;
        let before = Ledger {
            format: FORMAT,
            tenants: match &text {
                Some(t) => self.parse(&key, t)?.into_iter().collect(),
                None => Vec::new(),
            },
            damaged: Vec::new(),
        };
        let mut ledger = before.clone();
        let out = f(&mut ledger);
        let (rows, deletes) = changes(&before, &ledger)?;
        if chg_tx.send((rows, deletes)).is_err() {
            return Err(self.query_error("the database task stopped".into()).into());
        }
        done_rx
            .await
            .map_err(|_| self.query_error("the database task stopped".into()))??;
        Ok(out)
    }

    /// Writes what changed between two ledgers in one transaction (a whole-ledger change).
    pub fn write_changes(&self, before: &Ledger, after: &Ledger) -> Result<(), LedgerError> {
        let (rows, deletes) = changes(before, after)?;
        self.write(rows, deletes).map_err(LedgerError::from)
    }

    /// `state migrate` into this database: every record and audit line in one transaction,
    /// refused (nothing written) when it already holds a tenant.
    pub fn import(&self, tenants: &[TenantRecord], audit: Vec<String>) -> Result<(), ImportError> {
        let mut rows = Vec::with_capacity(tenants.len());
        for t in tenants {
            rows.push(row_of(t).map_err(|e| ImportError::State(self.query_error(e.to_string())))?);
        }
        let i = self.inner.clone();
        let ledger_key = i.lock_key("ledger", "");
        self.block(async move {
            let c = i.get().await?;
            let r = async {
                c.batch_execute("BEGIN").await?;
                c.execute("SELECT pg_advisory_xact_lock($1)", &[&ledger_key])
                    .await?;
                let n: i64 = c
                    .query_one("SELECT count(*) FROM tenants", &[])
                    .await?
                    .get(0);
                if n > 0 {
                    return Ok(Some(n));
                }
                write_rows(&c, rows, Vec::new(), &i.host).await?;
                c.execute(
                    "INSERT INTO audit_log (host, entry) SELECT $1, e FROM unnest($2::text[]) WITH ORDINALITY AS x(e, n) ORDER BY n",
                    &[&i.host, &audit],
                )
                .await?;
                c.batch_execute("COMMIT").await?;
                Ok(None)
            }
            .await;
            if !matches!(r, Ok(None)) {
                let _ = c.batch_execute("ROLLBACK").await;
            }
            i.put(c);
            match r {
                Ok(None) => Ok(Ok(())),
                Ok(Some(n)) => Ok(Err(ImportError::NotEmpty {
                    target: i.db.clone(),
                    tenants: n as usize,
                })),
                Err(e) => Err(i.err(e)),
            }
        })
        .map_err(ImportError::State)?
    }
}

fn row_of(t: &TenantRecord) -> Result<Row, serde_json::Error> {
    let v = serde_json::json!({"format": FORMAT, "tenant": t});
    Ok((
        key_of(&t.domain),
        t.domain.clone(),
        t.tenant_id.clone(),
        t.seq,
        serde_json::to_string(&v)?,
    ))
}

/// What changed between two ledgers: the rows to write, the keys to remove.
fn changes(before: &Ledger, after: &Ledger) -> Result<(Vec<Row>, Vec<String>), LedgerError> {
    let mut rows = Vec::new();
    for t in &after.tenants {
        if !before.tenants.contains(t) {
            rows.push(row_of(t).map_err(|e| LedgerError::Write {
                path: PathBuf::from(&t.domain),
                source: std::io::Error::other(e),
            })?);
        }
    }
    let deletes = before
        .tenants
        .iter()
        .map(|old| key_of(&old.domain))
        .filter(|k| !after.tenants.iter().any(|t| key_of(&t.domain) == *k))
        .collect();
    Ok((rows, deletes))
}

/// Why `state migrate` could not copy into a target.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the target {target} already holds {tenants} tenant(s); nothing was copied")]
    NotEmpty { target: String, tenants: usize },
    #[error(transparent)]
    State(StateError),
    #[error(transparent)]
    Ledger(LedgerError),
}

impl From<StateError> for LedgerError {
    fn from(e: StateError) -> Self {
        LedgerError::State(Box::new(e))
    }
}

/// The key of the record `name` or `tenant_id` names (the name's own key when none).
async fn find_key(
    c: &Conn,
    name: &str,
    tenant_id: Option<&str>,
) -> Result<String, tokio_postgres::Error> {
    let st = c
        .statement(
            "SELECT key FROM tenants WHERE key = $1 OR lower(tenant_id) = $2 \
             OR ($3 <> '' AND lower(tenant_id) = $3) ORDER BY (key = $1) DESC, seq LIMIT 1",
            &[TEXT, TEXT, TEXT],
        )
        .await?;
    let (own, name_l, id_l) = find_args(name, tenant_id);
    let row = c.query_opt(&st, &[&own, &name_l, &id_l]).await?;
    Ok(row.map_or(own, |r| r.get(0)))
}

/// The parameters of the record search: the name's own key, the name and the id, lowercase.
fn find_args(name: &str, tenant_id: Option<&str>) -> (String, String, String) {
    (
        key_of(name),
        name.to_ascii_lowercase(),
        tenant_id.unwrap_or("").to_ascii_lowercase(),
    )
}
