//! Editing: a new revision of the spec, re-tiered. If anything the approvers signed changes
//! (any byte of the manifest), every approval of the old revision is void; a wording-only edit
//! keeps the manifest, and with it the approvals.

use super::repo;
use super::spec::{manifest_body, Spec};
use super::{State, Workflow, WorkflowError};
use crate::registry;
use crate::users::User;
use serde_json::json;

impl Workflow {
    /// Submits a new revision of proposal `id`.
    ///
    /// Secret config values that come back as the redaction marker (an edit made from a card,
    /// which never sees secrets) keep their previous value.
    pub async fn edit(&self, editor: &User, id: i64, mut spec: Spec) -> Result<super::ProposalView, WorkflowError> {
        let fleet = registry::all(self.store.pool()).await?;
        let mut tx = self.store.pool().begin().await?;
        let mut p = repo::proposal(&mut tx, id).await?;
        if !matches!(p.state, State::AwaitingApproval | State::Blocked) {
            return Err(WorkflowError::WrongState { id, state: p.state.name(), action: "edit" });
        }
        let may_edit = editor.name == p.requester || editor.is_approver();
        if !may_edit {
            return Err(WorkflowError::Forbidden {
                user: editor.name.clone(),
                action: "edit",
                role: "requester of it, or approver".into(),
            });
        }
        if spec.kind != p.kind {
            return Err(WorkflowError::Spec(super::spec::SpecError::Invalid(format!(
                "an edit cannot change the kind ({} to {}): propose anew",
                p.kind.name(),
                spec.kind.name()
            ))));
        }
        let old = repo::revision(&mut tx, id, p.revision).await?;
        restore_secrets(&mut spec, &old.spec);
        let resolved = self.resolve(&spec, &fleet).await?;
        self.check_rollback(&mut tx, &spec).await?;
        let old_manifest: airlock_proto::Manifest<'_> =
            airlock_proto::decode(&old.manifest).map_err(WorkflowError::DeviceRefusal)?;
        // Rebuild the manifest as the old revision would have: same revision, sequence and times.
        let mut same_inputs =
            self.manifest_inputs(&mut tx, &p, &resolved, old_manifest.sequence, old_manifest.issued_at).await?;
        same_inputs.revision = old_manifest.revision;
        let rebuilt = manifest_body(&spec, &same_inputs, &self.salt(p.id, old_manifest.revision))?;
        let material = rebuilt != old.manifest;
        let previous = p.revision;
        p.revision += 1;
        p.title = spec.title.clone();
        p.break_glass = spec.break_glass.is_some();
        let revision = self
            .new_revision(&mut tx, &p, &spec, &resolved, editor, fleet.len() as u32, (!material).then_some(&old))
            .await?;
        let voided = if material {
            repo::void_approvals(&mut tx, id, previous).await?
        } else {
            // Nothing signed changed: the approvals carry over to the new revision.
            for a in repo::approvals(&mut tx, id, previous).await? {
                repo::insert_approval(&mut tx, id, p.revision, &a).await?;
            }
            0
        };
        self.record(
            &mut tx,
            &editor.name,
            "edited",
            Some(id),
            json!({ "revision": p.revision, "previous": previous, "material": material, "approvals_voided": voided,
                    "spec": spec.redacted(), "manifest_digest": revision.manifest_digest }),
        )
        .await?;
        self.route(&mut tx, &mut p, &revision, &resolved.decision, &editor.name).await?;
        super::pause_point("edited").await;
        tx.commit().await?;
        self.view(id).await
    }
}

/// Puts back secret values an editor could not see.
fn restore_secrets(spec: &mut Spec, old_spec: &str) {
    let Ok(old) = serde_json::from_str::<Spec>(old_spec) else { return };
    let (Some(new), Some(old)) = (spec.config.as_mut(), old.config) else { return };
    for (key, value) in new.values.iter_mut() {
        let redacted = value.value == serde_json::Value::String(super::spec::REDACTED.into());
        if let Some(previous) = old.values.get(key).filter(|_| redacted) {
            value.value = previous.value.clone();
            value.secret = true;
        }
    }
}
