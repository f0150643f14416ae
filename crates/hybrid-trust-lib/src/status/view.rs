//! A fleet's status as `status` shows it: every tenant's record (as the ledger has it, or
//! refreshed from the tenants with `--live`), its evaluated status, and what a live read found
//! (drift, tenants that could not be read), and Microsoft's dated changes that apply to the
//! fleet's clouds ([`crate::advisories`], less those the settings acknowledge). Rendered here as
//! the JSON document, the table with its timelines, drift and advisory lines, the HTML page
//! ([`crate::report::html`]) and the `--check` answer; the command line only prints.

use super::{TenantStatus, Thresholds, check_line, evaluate};
use crate::fleet::Drift;
use crate::ledger::TenantRecord;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// What a live read of the tenants found, index by index with the tenants.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub drift: Vec<Vec<Drift>>,
    pub errors: Vec<Option<String>>,
    /// The hint of the first error.
    pub first_hint: Option<String>,
    /// Keys on the target applications that the ledger did not put there (issue 17).
    pub foreign: Vec<Vec<crate::credential::foreign::ForeignKey>>,
}

/// The tenants, their statuses, and the live read if there was one.
pub struct Fleet {
    pub tenants: Vec<TenantRecord>,
    pub statuses: Vec<TenantStatus>,
    pub live: Option<Live>,
    pub now: DateTime<Utc>,
    /// Advisory ids the settings acknowledge (`[advisories] acknowledged`): not shown.
    pub acknowledged: Vec<String>,
    /// Tenant records that could not be read: shown as problems, counted by `--check` as
    /// tenants it could not read.
    pub damaged: Vec<crate::ledger::Damaged>,
}

impl Fleet {
    pub fn new(
        tenants: Vec<TenantRecord>,
        live: Option<Live>,
        now: DateTime<Utc>,
        th: Thresholds,
    ) -> Fleet {
        let statuses = tenants.iter().map(|t| evaluate(t, now, th)).collect();
        Fleet {
            tenants,
            statuses,
            live,
            now,
            acknowledged: Vec::new(),
            damaged: Vec::new(),
        }
    }

    /// The same fleet with the records the ledger could not read (issue 24, item 7).
    pub fn with_damaged(mut self, damaged: Vec<crate::ledger::Damaged>) -> Fleet {
        self.damaged = damaged;
        self
    }

    /// The same fleet without the advisories the settings acknowledge.
    pub fn with_acknowledged(mut self, ids: Vec<String>) -> Fleet {
        self.acknowledged = ids;
        self
    }

    /// Microsoft's dated changes that bear on the fleet's clouds at `now`, soonest first.
    pub fn advisories(&self) -> Vec<&'static crate::advisories::Advisory> {
        crate::advisories::for_fleet(
            self.tenants.iter().map(|t| t.cloud.as_str()),
            self.now,
            &self.acknowledged,
        )
    }

    /// The iCalendar export with alarms at `thresholds_days`.
    pub fn ics(&self, thresholds_days: &[i64]) -> String {
        crate::report::ics(&self.pairs(), thresholds_days, self.now)
    }

    /// The self-contained HTML page (`status --format html`).
    pub fn html(&self) -> String {
        let pairs: Vec<(TenantRecord, TenantStatus)> = self
            .tenants
            .iter()
            .cloned()
            .zip(self.statuses.iter().cloned())
            .collect();
        crate::report::html::render(&pairs, &self.advisories(), self.now)
    }

    fn errors(&self) -> usize {
        self.damaged.len()
            + self
                .live
                .as_ref()
                .map_or(0, |l| l.errors.iter().filter(|e| e.is_some()).count())
    }

    fn foreign(&self) -> usize {
        self.live
            .as_ref()
            .map_or(0, |l| l.foreign.iter().map(Vec::len).sum())
    }

    /// `--check`: the exit code, the plugin line, and the same as JSON. A foreign key makes an
    /// OK at least a WARNING, and is named in the line.
    pub fn check(&self, th: Thresholds) -> (u8, String, Value) {
        let (mut code, mut line) = check_line(&self.statuses, self.errors(), th);
        let n = self.foreign();
        if n > 0 && code < 3 {
            let note = format!("{n} foreign key(s) on the target applications");
            // (Another host's keys count: this ledger does not know them either.)
            if code == 0 {
                code = 1;
                line = line.replacen(
                    "HYBRID-TRUST OK - ",
                    &format!("HYBRID-TRUST WARNING - {note}; "),
                    1,
                );
            } else {
                line = line.replacen(" |", &format!("; {note} |"), 1);
            }
        }
        let word = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][usize::from(code.min(3))];
        let json = json!({"status": word, "code": code, "summary": line.trim_end(), "tenants": self.statuses});
        (code, line, json)
    }

    /// The JSON document (docs/contract.md `status`): with `--live`, each tenant's drift and error.
    pub fn json(&self) -> Value {
        let list: Vec<Value> = self
            .statuses
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                if let Some(l) = &self.live {
                    v["drift"] = json!(l.drift.get(i).cloned().unwrap_or_default());
                    v["live_error"] = json!(l.errors.get(i).cloned().flatten());
                    v["foreign"] = json!(l.foreign.get(i).cloned().unwrap_or_default());
                }
                v
            })
            .collect();
        let advisories: Vec<crate::advisories::Listed> =
            self.advisories().into_iter().map(Into::into).collect();
        let damaged: Vec<Value> = self
            .damaged
            .iter()
            .map(|d| json!({"tenant": d.tenant, "file": d.path, "error": d.error, "fix": d.hint}))
            .collect();
        json!({"as_of": self.now, "live": self.live.is_some(), "tenants": list, "damaged": damaged, "advisories": advisories})
    }

    /// The table with a 12-month timeline per tenant, then drift and read errors.
    pub fn table(&self) -> String {
        let rows: Vec<(TenantStatus, String)> = self
            .statuses
            .iter()
            .cloned()
            .zip(
                self.tenants
                    .iter()
                    .map(|t| crate::report::timeline(t, self.now)),
            )
            .collect();
        let mut s = crate::report::table(&rows);
        if let Some(l) = &self.live {
            for (i, t) in self.tenants.iter().enumerate() {
                for d in l.drift.get(i).into_iter().flatten() {
                    s.push_str(&format!(
                        "drift {}: {} {} ({})\n",
                        t.domain, d.app_id, d.thumbprint_sha1, d.kind
                    ));
                }
                for f in l.foreign.get(i).into_iter().flatten() {
                    s.push_str(&format!(
                        "WARNING {} {}: {} {} {} -> {} {}\n",
                        if f.another_host {
                            "key unknown to this ledger, named as hybrid-trust names its keys (another host's?)"
                        } else {
                            "foreign key"
                        },
                        t.domain,
                        f.app_id,
                        f.thumbprint_sha1
                            .as_deref()
                            .unwrap_or("(unknown thumbprint)"),
                        f.start.as_deref().unwrap_or("?"),
                        f.end.as_deref().unwrap_or("?"),
                        crate::terminal::display_safe(f.display_name.as_deref().unwrap_or(""))
                    ));
                }
                if let Some(Some(e)) = l.errors.get(i) {
                    s.push_str(&format!("could not read {}: {e}\n", t.domain));
                }
            }
        }
        for d in &self.damaged {
            s.push_str(&format!(
                "DAMAGED record {}: {}\n  fix: {}\n",
                d.tenant,
                crate::terminal::display_safe(&d.error),
                crate::terminal::display_safe(&d.hint)
            ));
        }
        let advisories = self.advisories();
        if !advisories.is_empty() {
            s.push_str("\nMicrosoft's dated changes for this trust (README, \"Microsoft's dated changes\"):\n");
            for a in advisories {
                s.push_str(&format!("  {}\n", crate::advisories::line(a, self.now)));
            }
        }
        s
    }

    /// The records paired with their statuses (the Prometheus and iCalendar exports).
    pub fn pairs(&self) -> Vec<(&TenantRecord, TenantStatus)> {
        self.tenants
            .iter()
            .zip(self.statuses.iter().cloned())
            .collect()
    }

    /// When some tenants could not be read live: the error line and its hint.
    pub fn live_failure(&self) -> Option<(String, String)> {
        let l = self.live.as_ref()?;
        let (i, e) = l
            .errors
            .iter()
            .enumerate()
            .find_map(|(i, e)| e.as_ref().map(|e| (i, e)))?;
        let n = self.errors();
        Some((
            format!(
                "{n} tenant(s) could not be read live (first: {}: {e})",
                self.tenants[i].domain
            ),
            format!(
                "the others are shown; {}",
                l.first_hint.clone().unwrap_or_else(|| {
                    "check the admin identity's access to those tenants".to_string()
                })
            ),
        ))
    }
}
