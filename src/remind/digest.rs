//! One reminder message: a digest of every tenant that needs attention on one channel and for
//! one set of recipients, the most urgent first. Each entry says what lapses when, what breaks
//! for users, and the exact commands that fix it. A digest of one entry reads as the single
//! reminders always did (same subject line).

use super::{Due, Kind};
use serde::Serialize;

/// What Skype for Business Server loses when the trust lapses (SFBDOCS "Plan to integrate Skype
/// for Business and Exchange"; LS Storage Service events 32053/32054).
pub const WHAT_BREAKS: &str = "what breaks for users: contacts in Exchange (unified contact store), archiving to Exchange, meetings and conversation history in Exchange Online, and high-resolution photos";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    /// Most urgent first.
    pub entries: Vec<Due>,
}

impl Digest {
    pub fn new(mut entries: Vec<Due>) -> Digest {
        entries.sort_by_key(Due::urgency);
        Digest { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The subject line: the single reminder's own, or a count with the most urgent.
    pub fn subject(&self) -> String {
        match self.entries.as_slice() {
            [] => "[hybrid-trust] nothing needs attention".to_string(),
            [one] => subject(one),
            [first, ..] => {
                let tenants = {
                    let mut t: Vec<&str> = self.entries.iter().map(|e| e.tenant.as_str()).collect();
                    t.sort_unstable();
                    t.dedup();
                    t.len()
                };
                format!(
                    "[hybrid-trust] {tenants} tenant(s) need attention; most urgent: {}",
                    subject(first).trim_start_matches("[hybrid-trust] ")
                )
            }
        }
    }

    /// The plain-text body: each entry in turn.
    pub fn text(&self) -> String {
        let mut s = String::new();
        if self.entries.len() > 1 {
            s.push_str(&format!(
                "{} item(s) need attention, the most urgent first.\n\n",
                self.entries.len()
            ));
        }
        for (i, e) in self.entries.iter().enumerate() {
            if self.entries.len() > 1 {
                s.push_str(&format!("{}. {}\n", i + 1, subject(e)));
            }
            s.push_str(&text(e));
            s.push('\n');
        }
        s.push_str("To see every tenant: hybrid-trust status --all\n");
        s
    }
}

/// The subject line of one entry.
pub fn subject(m: &Due) -> String {
    match m.kind {
        Kind::RenewalFailure => format!(
            "[hybrid-trust] {}: the renewal of the Skype for Business hybrid trust failed",
            m.tenant
        ),
        Kind::Expired => format!(
            "[hybrid-trust] {}: the Skype for Business hybrid trust has EXPIRED",
            m.tenant
        ),
        Kind::Expiry => format!(
            "[hybrid-trust] {}: the Skype for Business hybrid trust ends in {} day(s) ({})",
            m.tenant,
            m.days_left.unwrap_or(0),
            m.ends
                .map(|e| e.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        ),
    }
}

/// The command that renews (or retries) the tenant.
pub fn command(m: &Due) -> String {
    format!("hybrid-trust renew --tenant {}", m.tenant)
}

/// The commands that fix it: the status's next action when it names one, and renew.
pub fn commands(m: &Due) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(r) = &m.roll {
        out.push(format!(
            "on a Front End: run {} (written next to the ledger)",
            r.script
        ));
        out.push(format!(
            "hybrid-trust renew --tenant {} --confirm-roll",
            m.tenant
        ));
    } else {
        out.push(command(m));
    }
    out.push(format!("hybrid-trust status --tenant {}", m.tenant));
    out
}

/// The plain-text section of one entry.
pub fn text(m: &Due) -> String {
    let tid = m
        .tenant_id
        .as_deref()
        .map(|t| format!(" (tenant id {t})"))
        .unwrap_or_default();
    let when = m
        .ends
        .map(|e| e.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "unknown".into());
    let left = match m.days_left {
        Some(d) if d < 0 || m.kind == Kind::Expired || m.ends.is_some_and(|_| d < 0) => {
            "already ended: the trust is broken now".to_string()
        }
        Some(d) => format!("in {d} day(s)"),
        None => "unknown".into(),
    };
    let fix = commands(m)
        .iter()
        .map(|c| format!("  {c}\n"))
        .collect::<String>();
    match m.kind {
        Kind::RenewalFailure => format!(
            "Tenant: {}{tid}\nThe last renewal attempt failed: {}\nThe trust lapses: {when} ({left}); {WHAT_BREAKS}.\nNext action: {}\n\nTo retry and see the error: {}\nTo fix:\n{fix}",
            m.tenant,
            m.detail,
            m.action,
            command(m),
        ),
        Kind::Expiry | Kind::Expired => format!(
            "Tenant: {}{tid}\nWhat expires: {} for the on-prem OAuthTokenIssuer certificate {} on application {}\nWhen: {when} ({left})\nWhat breaks then: {}.\nNext action: {}\n\nTo renew: {}\nTo check first: {} --dry-run\nTo fix:\n{fix}",
            m.tenant,
            m.detail,
            m.thumbprint_sha1,
            m.app_id,
            WHAT_BREAKS.trim_start_matches("what breaks for users: "),
            m.action,
            command(m),
            command(m),
        ),
    }
}
