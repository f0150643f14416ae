//! Adding service principal names (`00000004-…/<pool external web services FQDN>`) under the
//! tenant lock, then recording the pools in the ledger.

use super::{Session, SessionError};
use crate::credential::{Approval, CredentialError, NameChanges, NameOutcome};
use crate::graph::ServicePrincipal;
use crate::microsoft::SFB_APP_ID;

impl Session {
    /// Adds each of `names` to the Skype for Business service principal. `sp_id`: its object id
    /// when the caller already looked it up (onboard, right after the upload), saving a lookup.
    pub async fn add_names(
        &mut self,
        names: &[String],
        sp_id: Option<&str>,
        confirm: &mut dyn FnMut(&ServicePrincipal, &[String]) -> Approval,
    ) -> Result<NameChanges, SessionError> {
        self.lock().await?;
        let actor = self.actor();
        let g = self.graph();
        let sp_id = match sp_id {
            Some(id) => id.to_string(),
            None => g
                .find_service_principal(SFB_APP_ID)
                .await
                .map_err(CredentialError::Graph)?,
        };
        let mut out = NameChanges::default();
        for name in names {
            let (changed, sp) = self
                .change(&g, SFB_APP_ID, &actor)
                .add_name(&sp_id, name, confirm)
                .await?;
            match changed {
                NameOutcome::Added => out.added.push(name.clone()),
                NameOutcome::Present => out.present.push(name.clone()),
                NameOutcome::Planned => out.planned.push(name.clone()),
            }
            out.names_now = sp.service_principal_names;
        }
        if !self.dry_run {
            let fqdns: Vec<String> = names
                .iter()
                .filter_map(|n| n.split_once('/').map(|(_, f)| f.to_string()))
                .collect();
            let now = self.clock.now();
            let added = out.added.clone();
            self.record(&[SFB_APP_ID.to_string()], |rec| {
                rec.record_pools(&fqdns, &added, now)
            })
            .await?;
        }
        Ok(out)
    }
}
