//! Microsoft Graph `servicePrincipals`: lookup by appId, key credentials (read, merge, PATCH with
//! read-back), service principal names, Graph's error model. Retries come from the HTTP layer;
//! renewal policy, the ledger and output formatting live elsewhere.

mod client;
pub mod keys;
pub mod resend;

pub use client::{
    Graph, GraphError, ServicePrincipal, parse_service_principal, parse_service_principals,
};
pub use keys::{
    KeyCredential, KeyIdentity, KeyPlan, PlanError, WindowError, new_key, plan_remove, plan_retire,
    plan_rewindow, plan_upload, refuse_removed, superseded_windows, window,
};
