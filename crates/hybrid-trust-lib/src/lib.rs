//! hybrid-trust: onboard and keep alive the OAuth server-to-server trust between an on-premises
//! Skype for Business / Lync Server and a Microsoft 365 tenant.
//!
//! The library does the work; `src/main.rs` parses, dispatches and renders errors. See
//! ARCHITECTURE.md for the modules by layer and docs/design.md for the boundaries.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod advisories;
pub mod audit;
pub mod cert;
pub mod clock;
pub mod cloud;
pub mod config;
pub mod credential;
pub mod dates;
pub mod exchange;
pub mod fleet;
pub mod graph;
pub mod http;
pub mod ids;
pub mod keyring;
pub mod ledger;
pub mod lifecycle;
pub mod lock;
pub mod login;
pub mod mailbox;
pub mod microsoft;
pub mod notify;
pub mod onprem;
pub mod paths;
pub mod progress;
pub mod remind;
pub mod renew;
pub mod report;
pub mod secret;
pub mod session;
pub mod state;
pub mod status;
pub mod sts;
pub mod tenant;
pub mod terminal;
pub mod verify;

/// Renders an error and its sources as `outer: inner: innermost`, skipping a source whose text
/// the outer message already contains.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}
