//! Microsoft Graph `servicePrincipals` and `applications` (Exchange Server hybrid's dedicated
//! application, [`applications`]; key-lifetime caps of app management policies, [`policy`]):
//! lookup by appId, key credentials (read, merge, PATCH with
//! read-back), service principal names, Graph's error model. Retries come from the HTTP layer;
//! renewal policy, the ledger and output formatting live elsewhere.

pub mod applications;
mod client;
pub mod keys;
pub mod plan;
pub mod policy;
pub mod resend;
pub mod window;

pub use client::{
    Graph, GraphError, ServicePrincipal, parse_service_principal, parse_service_principals,
};
pub use keys::{KeyCredential, KeyIdentity};
pub use plan::{
    KeyPlan, PlanError, plan_remove, plan_retire, plan_rewindow, plan_upload, refuse_removed,
    superseded_windows,
};
pub use window::{WindowError, new_key, window};
