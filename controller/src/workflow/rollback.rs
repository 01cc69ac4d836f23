//! Whether the rollback plan can happen, decided at propose time.
//!
//! A device that confirms an image raises its minimum security counter to the image's, and
//! refuses afterwards to run (or revert to) any image below it. So "rollback: previous image"
//! is a promise only while the new image's counter does not rise above the counter of the
//! image the cohort runs now. The controller knows the counters of the firmware it signed; a
//! proposal that raises the counter above the highest one it signed for the hardware must say
//! there is no rollback (the tier rules then apply their no-rollback floor) or name a
//! roll-forward version instead.

use super::spec::{RollbackSpec, Spec, SpecError};
use super::{Workflow, WorkflowError};
use crate::policy::Kind;
use airlock_proto::{Action, Manifest};
use sqlx::Row;

impl Workflow {
    /// Refuses a rollback plan the security counter rules out (see the module docs).
    pub(super) async fn check_rollback(
        &self,
        conn: &mut sqlx::AnyConnection,
        spec: &Spec,
    ) -> Result<(), WorkflowError> {
        let (Kind::Firmware, Some(fw), RollbackSpec::Previous) = (spec.kind, &spec.firmware, &spec.rollback) else {
            return Ok(());
        };
        let Some(running) = highest_signed_counter(conn, &fw.hardware).await? else {
            return Ok(());
        };
        if fw.security_counter <= running {
            return Ok(());
        }
        Err(WorkflowError::Spec(SpecError::Invalid(format!(
            "rollback \"previous\" cannot happen: security counter {} rises above {running}, the highest this \
             controller signed for {} (devices refuse to go back below it once they confirm); set rollback to \
             none (the tier rules for no rollback apply) or to a roll-forward version",
            fw.security_counter, fw.hardware
        ))))
    }
}

/// The highest security counter of the firmware for `hardware` this controller signed.
async fn highest_signed_counter(conn: &mut sqlx::AnyConnection, hardware: &str) -> Result<Option<u32>, WorkflowError> {
    let rows = sqlx::query(
        "SELECT r.manifest FROM revisions r JOIN proposals p ON p.id = r.proposal_id \
             WHERE p.kind = 'firmware' AND r.release_sig IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut highest = None;
    for row in rows {
        let bytes: Vec<u8> = row.try_get("manifest")?;
        let Ok(m) = airlock_proto::decode::<Manifest<'_>>(&bytes) else { continue };
        if let Action::Firmware(f) = m.action {
            if f.hardware == hardware {
                highest = highest.max(Some(f.security_counter));
            }
        }
    }
    Ok(highest)
}
