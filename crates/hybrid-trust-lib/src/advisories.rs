//! Microsoft's dated changes that bear on the Skype for Business hybrid trust, as data
//! (issue 18; facts and sources in docs/protocol.md §4.9): what changes on which date, which features
//! of the trust it touches, what the admin should do (with the exact PowerShell where it is
//! known), the source, whether a primary source confirms it, and the clouds it applies to.
//!
//! Pure: every function takes `now`, so `--as-of` plans against the same table. `status`,
//! `verify`, `remind` and the HTML report read it; `remind` sends each advisory once at 60 and
//! once at 14 days ahead of its date ([`due_reminders`]), recorded in the ledger like any
//! reminder (`advisory/<id>` in `reminders_sent`).
//!
//! Keep unconfirmed facts marked (`confirmed: false`): a date copied from secondary sources is
//! still worth a reminder, but the admin must know it was not read from Microsoft's own page.

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use serde::Serialize;

/// A part of the trust (or of this tool) that a change bears on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    /// Contacts kept in Exchange (unified contact store), through EWS.
    UnifiedContactStore,
    /// Archiving of IM and meetings to Exchange, through EWS.
    ExchangeArchiving,
    /// Server-side conversation history in Exchange Online, through EWS.
    ConversationHistory,
    /// High-resolution photos from Exchange, through EWS.
    HighResolutionPhotos,
    /// The key credential on `00000004` (what this tool uploads and renews).
    KeyCredential,
    /// The on-premises Skype for Business / Lync Server itself.
    OnPremServer,
    /// Reminder email sent through Exchange Online with SMTP AUTH.
    ReminderEmail,
}

impl Feature {
    pub fn describe(self) -> &'static str {
        match self {
            Feature::UnifiedContactStore => "contacts in Exchange (unified contact store)",
            Feature::ExchangeArchiving => "archiving to Exchange",
            Feature::ConversationHistory => "conversation history in Exchange Online",
            Feature::HighResolutionPhotos => "high-resolution photos",
            Feature::KeyCredential => "the key on the 00000004 service principal",
            Feature::OnPremServer => "the on-premises server",
            Feature::ReminderEmail => "reminder email through Exchange Online SMTP",
        }
    }
}

/// The national clouds by the names the ledger records (`--cloud`).
pub const ALL_CLOUDS: &[&str] = &["global", "gcc-high", "dod", "china"];

/// One dated change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advisory {
    /// Stable id (settings and the ledger name it).
    pub id: &'static str,
    /// The day it takes effect (UTC), as (year, month, day).
    #[serde(skip)]
    pub ymd: (i32, u32, u32),
    /// After this day it no longer bears on anything (a later advisory supersedes it); `None`:
    /// it stays relevant.
    #[serde(skip)]
    pub until: Option<(i32, u32, u32)>,
    pub title: &'static str,
    /// What changes.
    pub changes: &'static str,
    pub affects: &'static [Feature],
    /// What the admin should do.
    pub action: &'static str,
    /// The exact PowerShell, where it is known.
    pub powershell: Option<&'static str>,
    pub source: &'static str,
    /// Read from a primary (Microsoft) source; `false`: consistent secondary copies only.
    pub confirmed: bool,
    /// The national clouds it applies to (custom clouds get every advisory: see [`applies_to`]).
    pub clouds: &'static [&'static str],
}

const EWS_FEATURES: &[Feature] = &[
    Feature::UnifiedContactStore,
    Feature::ExchangeArchiving,
    Feature::ConversationHistory,
    Feature::HighResolutionPhotos,
];

/// The table. Sources: docs/protocol.md §4.9 and the pages named in each `source`.
pub const ADVISORIES: &[Advisory] = &[
    Advisory {
        id: "sfb-server-end-of-support",
        ymd: (2025, 10, 14),
        until: None,
        title: "Skype for Business Server 2015 and 2019 are out of support",
        changes: "Skype for Business Server 2015 and 2019 left support on 2025-10-14 (a paid extension ran to 2026-04-14); Lync Server 2013 on 2023-04-11. Subscription Edition follows the Modern Lifecycle Policy.",
        affects: &[Feature::OnPremServer],
        action: "check the version on a Front End and plan the move to Skype for Business Server Subscription Edition or to Teams",
        powershell: Some("Get-CsServerVersion"),
        source: "https://learn.microsoft.com/lifecycle/products/skype-for-business-server-2019",
        confirmed: true,
        clouds: ALL_CLOUDS,
    },
    Advisory {
        id: "sfb-online-app-deprecation",
        ymd: (2025, 6, 26),
        until: None,
        title: "The 00000004 Skype for Business Online app \"will be deprecated in near future\"",
        changes: "Microsoft says the first-party app 00000004-0000-0ff1-ce00-000000000000 will be deprecated (no date given; the date here is when the documentation said so) and asks admins to upload the certificate to Teams Calendar Scheduler Service (7557eb47-…) and Cloud Voicemail (db7de2b5-…) as well. What it means for Skype for Business Server's own calls to Exchange Online is not confirmed.",
        affects: &[Feature::KeyCredential],
        action: "also put the certificate on the two Teams-era apps: hybrid-trust credential upload --tenant <tenant> --cert <pfx> --app-id 00000004-0000-0ff1-ce00-000000000000 --app-id 7557eb47-c689-4224-abcf-aef9bd7573df --app-id db7de2b5-2149-435e-8043-e080dd50afae",
        powershell: None,
        source: "https://learn.microsoft.com/skypeforbusiness/deploy/integrate-with-exchange-server/oauth-with-online-and-on-premises",
        confirmed: true,
        clouds: ALL_CLOUDS,
    },
    Advisory {
        id: "ews-blocked-by-default",
        ymd: (2026, 10, 1),
        until: Some((2027, 4, 1)),
        title: "EWS in Exchange Online is blocked unless the tenant allows it",
        changes: "From 2026-10-01 tenants whose EWSEnabled was never set are switched to False (all EWS blocked); with EWSEnabled = True only applications on the tenant's AppID allow list (EWSAllowedAppIDs) may use EWS. Whether Skype for Business Server's calls as 00000004 are on Microsoft's pre-populated list is not confirmed.",
        affects: EWS_FEATURES,
        action: "in Exchange Online PowerShell, check EWSEnabled and the allow list; test unified contact store, archiving and conversation history after the change",
        powershell: Some("Get-OrganizationConfig | Format-List Ews*"),
        source: "https://msmessagecenter.com/MC1227454",
        confirmed: false,
        clouds: ALL_CLOUDS,
    },
    Advisory {
        id: "ews-retired",
        ymd: (2027, 4, 1),
        until: None,
        title: "EWS in Exchange Online is switched off for good",
        changes: "From 2027-04-01 EWS in Exchange Online is permanently off, no exceptions; Exchange Server on-premises is unaffected. Skype for Business Server reaches Exchange Online through EWS for the unified contact store, archiving, conversation history and high-resolution photos.",
        affects: EWS_FEATURES,
        action: "plan for those features to stop for users whose mailboxes are in Exchange Online (move them to Teams, or keep the mailboxes on Exchange Server); check the tenant now",
        powershell: Some("Get-OrganizationConfig | Format-List Ews*"),
        source: "https://msmessagecenter.com/MC1227454",
        confirmed: false,
        clouds: ALL_CLOUDS,
    },
    Advisory {
        id: "smtp-basic-auth-off",
        ymd: (2026, 12, 31),
        until: None,
        title: "SMTP AUTH with a password is off by default in Exchange Online",
        changes: "At the end of December 2026 Basic authentication for SMTP AUTH is disabled by default for existing tenants (admins can re-enable it; the final removal date is to be announced in the second half of 2027). Servers then answer 550 5.7.30 and a reminder email channel with a username and password stops.",
        affects: &[Feature::ReminderEmail],
        action: "send reminders with the [[reminders.graph_mail]] channel (Microsoft Graph sendMail as an app with Mail.Send on one mailbox; README), or use SMTP with OAuth",
        powershell: Some("Get-TransportConfig | Format-List SmtpClientAuthenticationDisabled"),
        source: "https://techcommunity.microsoft.com/blog/exchange/updated-exchange-online-smtp-auth-basic-authentication-deprecation-timeline/4489835",
        confirmed: true,
        clouds: ALL_CLOUDS,
    },
];

impl Advisory {
    /// The day it takes effect, at 00:00 UTC.
    pub fn date(&self) -> DateTime<Utc> {
        at(self.ymd)
    }

    /// What the admin should do, with the PowerShell when there is one: one line.
    pub fn action_line(&self) -> String {
        match self.powershell {
            Some(ps) => format!("{}; run: {ps}", self.action),
            None => self.action.to_string(),
        }
    }

    /// Whether it bears on any of `features`.
    pub fn touches(&self, features: &[Feature]) -> bool {
        self.affects.iter().any(|f| features.contains(f))
    }
}

fn at((y, m, d): (i32, u32, u32)) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Whether `a` applies to tenants in `cloud` (a ledger cloud name). A custom cloud (a
/// `--cloud-file`, the emulator) gets every advisory: the tool cannot tell which Microsoft cloud
/// stands behind it, and a needless reminder costs less than a missed one.
pub fn applies_to(a: &Advisory, cloud: &str) -> bool {
    !ALL_CLOUDS.contains(&cloud) || a.clouds.contains(&cloud)
}

/// The advisories that bear on a tenant in `cloud` at `now`: those not superseded yet
/// (`until`), soonest date first.
pub fn applicable(cloud: &str, now: DateTime<Utc>) -> Vec<&'static Advisory> {
    let mut v: Vec<&Advisory> = ADVISORIES
        .iter()
        .filter(|a| applies_to(a, cloud) && a.until.is_none_or(|u| now < at(u)))
        .collect();
    v.sort_by_key(|a| a.ymd);
    v
}

/// The advisories that bear on what `verify` proves (the trust itself: its key and the features
/// that ride on it, and the on-premises server), for a tenant in `cloud` at `now`.
pub fn bearing_on_trust(cloud: &str, now: DateTime<Utc>) -> Vec<&'static Advisory> {
    applicable(cloud, now)
        .into_iter()
        .filter(|a| a.affects.iter().any(|f| *f != Feature::ReminderEmail))
        .collect()
}

/// What `verify` prints after a proof: one `advisory:` line each for [`bearing_on_trust`].
pub fn notes_for_verify(cloud: &str, now: DateTime<Utc>) -> Vec<String> {
    bearing_on_trust(cloud, now)
        .into_iter()
        .map(|a| format!("advisory: {}", line(a, now)))
        .collect()
}

/// An advisory by id.
pub fn find(id: &str) -> Option<&'static Advisory> {
    ADVISORIES.iter().find(|a| a.id == id)
}

/// The days ahead of an advisory's date at which `remind` sends it.
pub const REMINDER_DAYS: [i64; 2] = [60, 14];

/// What the ledger records for an advisory sent at a threshold (`reminders_sent.credential`).
pub fn ledger_key(id: &str) -> String {
    format!("advisory/{id}")
}

/// One advisory due in a reminder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvisoryDue {
    pub id: &'static str,
    pub date: DateTime<Utc>,
    pub title: &'static str,
    pub action: String,
    pub source: &'static str,
    pub confirmed: bool,
    pub days_left: i64,
    /// The threshold this message is for (the nearest crossed).
    pub threshold_days: i64,
    /// Every threshold it settles (both when a first run is already inside 14 days).
    pub covers: Vec<i64>,
}

/// The advisories due in a reminder at `now` for a tenant in `cloud`: each one whose date is
/// ahead and at most 60 (then 14) days away, once per threshold: `sent` holds the
/// `(id, threshold)` pairs already delivered. Several thresholds crossed at once make one
/// message that settles them all. Nothing is sent for a date already past.
pub fn due_reminders(cloud: &str, now: DateTime<Utc>, sent: &[(String, i64)]) -> Vec<AdvisoryDue> {
    let mut out = Vec::new();
    for a in applicable(cloud, now) {
        let date = a.date();
        if date <= now {
            continue;
        }
        let days_left = (date - now).num_days();
        let covers: Vec<i64> = REMINDER_DAYS
            .iter()
            .copied()
            .filter(|th| days_left < *th)
            .filter(|th| !sent.iter().any(|(id, t)| id == a.id && t == th))
            .collect();
        let Some(threshold) = covers.iter().copied().min() else {
            continue;
        };
        out.push(AdvisoryDue {
            id: a.id,
            date,
            title: a.title,
            action: a.action_line(),
            source: a.source,
            confirmed: a.confirmed,
            days_left,
            threshold_days: threshold,
            covers,
        });
    }
    out
}

/// An advisory as `status --output json` lists it (docs/contract.md: `id`, `date`, `title`,
/// `action`, `source`, `confirmed`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    pub id: &'static str,
    pub date: String,
    pub title: &'static str,
    pub action: String,
    pub source: &'static str,
    pub confirmed: bool,
}

impl From<&Advisory> for Listed {
    fn from(a: &Advisory) -> Listed {
        Listed {
            id: a.id,
            date: a.date().format("%Y-%m-%d").to_string(),
            title: a.title,
            action: a.action_line(),
            source: a.source,
            confirmed: a.confirmed,
        }
    }
}

/// The advisories for a fleet: the union over its clouds, soonest first, without those the
/// settings acknowledge.
pub fn for_fleet<'a>(
    clouds: impl IntoIterator<Item = &'a str>,
    now: DateTime<Utc>,
    acknowledged: &[String],
) -> Vec<&'static Advisory> {
    let mut out: Vec<&'static Advisory> = Vec::new();
    for c in clouds {
        for a in applicable(c, now) {
            if !out.iter().any(|o| o.id == a.id) && !acknowledged.iter().any(|k| k == a.id) {
                out.push(a);
            }
        }
    }
    out.sort_by_key(|a| a.ymd);
    out
}

/// One line for a terminal: date, title, `(unconfirmed)` when so, and the action.
pub fn line(a: &Advisory, now: DateTime<Utc>) -> String {
    let when = if a.date() > now {
        format!("in {} day(s)", (a.date() - now).num_days())
    } else {
        "in effect".to_string()
    };
    format!(
        "{} ({when}){}: {}. Do: {}",
        a.date().format("%Y-%m-%d"),
        if a.confirmed { "" } else { " (unconfirmed)" },
        a.title,
        a.action_line()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        at((y, m, d))
    }

    #[test]
    fn the_table_is_well_formed() {
        let mut ids: Vec<&str> = ADVISORIES.iter().map(|a| a.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ADVISORIES.len(), "ids are unique");
        for a in ADVISORIES {
            assert!(a.date() > day(2020, 1, 1), "{}: a real date", a.id);
            assert!(a.source.starts_with("https://"), "{}", a.id);
            assert!(!a.affects.is_empty() && !a.clouds.is_empty(), "{}", a.id);
            assert!(
                a.id.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
            if let Some(u) = a.until {
                assert!(at(u) > a.date(), "{}", a.id);
            }
        }
        // The EWS check is the one line the issue asks for.
        for id in ["ews-blocked-by-default", "ews-retired"] {
            assert_eq!(
                find(id).and_then(|a| a.powershell),
                Some("Get-OrganizationConfig | Format-List Ews*")
            );
        }
    }

    #[test]
    fn applicable_drops_superseded_advisories_and_sorts_by_date() {
        let before = applicable("global", day(2026, 9, 1));
        assert!(before.iter().any(|a| a.id == "ews-blocked-by-default"));
        assert!(before.windows(2).all(|w| w[0].ymd <= w[1].ymd));
        let after = applicable("global", day(2027, 4, 1));
        assert!(!after.iter().any(|a| a.id == "ews-blocked-by-default"));
        assert!(after.iter().any(|a| a.id == "ews-retired"));
        // A custom cloud gets every advisory that is not superseded.
        assert_eq!(applicable("emulator", day(2026, 9, 1)).len(), before.len());
    }

    #[test]
    fn reminders_come_at_60_and_14_days_once_each() {
        let ews = day(2027, 4, 1);
        let cloud = "global";
        let ids = |v: &[AdvisoryDue]| v.iter().map(|d| d.id).collect::<Vec<_>>();
        // 61 days ahead: nothing yet for the EWS shutdown.
        let d = due_reminders(cloud, ews - chrono::TimeDelta::days(61), &[]);
        assert!(!ids(&d).contains(&"ews-retired"));
        // 59 days ahead: the 60-day reminder.
        let now = ews - chrono::TimeDelta::days(59);
        let d = due_reminders(cloud, now, &[]);
        let e = d.iter().find(|d| d.id == "ews-retired").unwrap();
        assert_eq!((e.threshold_days, e.covers.clone()), (60, vec![60]));
        // Once sent, not again until 14 days ahead.
        let sent = vec![("ews-retired".to_string(), 60)];
        assert!(!ids(&due_reminders(cloud, now, &sent)).contains(&"ews-retired"));
        let later = ews - chrono::TimeDelta::days(13);
        let e2 = due_reminders(cloud, later, &sent);
        let e2 = e2.iter().find(|d| d.id == "ews-retired").unwrap();
        assert_eq!((e2.threshold_days, e2.covers.clone()), (14, vec![14]));
        // A first run inside 14 days settles both thresholds with one message.
        let both = due_reminders(cloud, later, &[]);
        let b = both.iter().find(|d| d.id == "ews-retired").unwrap();
        assert_eq!((b.threshold_days, b.covers.clone()), (14, vec![60, 14]));
        // Past its date: nothing.
        assert!(!ids(&due_reminders(cloud, ews, &[])).contains(&"ews-retired"));
    }

    #[test]
    fn listed_keys_and_line_mark_unconfirmed_facts() {
        let a = find("ews-retired").unwrap();
        let j = serde_json::to_value(Listed::from(a)).unwrap();
        for k in ["id", "date", "title", "action", "source", "confirmed"] {
            assert!(j.get(k).is_some(), "{k}");
        }
        assert_eq!(j["date"], "2027-04-01");
        assert!(j["action"].as_str().unwrap().contains("Format-List Ews*"));
        let l = line(a, day(2027, 3, 2));
        assert!(
            l.contains("(unconfirmed)") && l.contains("in 30 day(s)"),
            "{l}"
        );
        let c = find("smtp-basic-auth-off").unwrap();
        assert!(!line(c, day(2026, 1, 1)).contains("unconfirmed"));
    }

    #[test]
    fn fleet_union_skips_acknowledged() {
        let now = day(2026, 11, 30);
        let all = for_fleet(["global", "dod", "global"], now, &[]);
        let mut ids: Vec<&str> = all.iter().map(|a| a.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        let some = for_fleet(["global"], now, &["ews-retired".to_string()]);
        assert!(!some.iter().any(|a| a.id == "ews-retired"));
    }
}
