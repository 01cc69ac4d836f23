//! What a rollout sends, loaded from the signed revision and checked before a byte leaves: the
//! release signature verifies, the plan hashes to the signed plan digest, the cohort matches the
//! signed root and size.

use super::{Engine, RolloutError, Transport};
use crate::cohort::Cohort;
use crate::policy::Kind;
use crate::release::Release;
use crate::store::corrupt;
use crate::workflow::spec::{RolloutPlan, Spec};
use airlock_proto::build::SignedOwned;
use airlock_proto::{Action, Approval, Decision, Domain, Manifest, Signature};
use sqlx::{AnyConnection, Row};
use std::sync::Arc;

/// Everything a rollout needs to send, immutable once the revision is signed.
#[derive(Debug)]
pub(crate) struct Material {
    /// The signed revision.
    pub revision: u32,
    /// Firmware, config or decommission (which revert command applies).
    pub kind: Kind,
    /// The plan approvers signed the digest of.
    pub plan: RolloutPlan,
    /// The plan's device timeout, milliseconds.
    pub timeout_ms: i64,
    /// The cohort, as signed.
    pub cohort: Cohort,
    /// The manifest with its release signature.
    pub manifest: SignedOwned,
    /// The valid approvals of the revision.
    pub approvals: Vec<Approval>,
    /// The manifest digest, hex (device reports name it).
    pub digest_hex: String,
}

impl Material {
    /// The release: the per-device deliveries.
    pub fn release(&self) -> Result<Release<'_>, RolloutError> {
        Ok(Release::new(self.manifest.clone(), self.approvals.clone(), &self.cohort)?)
    }
}

impl<T: Transport> Engine<T> {
    /// The material of `proposal`'s `revision`, from the cache or loaded and verified.
    pub(super) async fn material(
        &self,
        conn: &mut AnyConnection,
        proposal: i64,
        revision: u32,
    ) -> Result<Arc<Material>, RolloutError> {
        if let Some(m) = self.cached(proposal).filter(|m| m.revision == revision) {
            return Ok(m);
        }
        let m = Arc::new(load(conn, &self.wf.release_key(), proposal, revision).await?);
        if let Ok(mut cache) = self.material.lock() {
            cache.insert(proposal, Arc::clone(&m));
        }
        Ok(m)
    }

    fn cached(&self, proposal: i64) -> Option<Arc<Material>> {
        self.material.lock().ok().and_then(|c| c.get(&proposal).cloned())
    }
}

async fn load(
    conn: &mut AnyConnection,
    release_key: &airlock_proto::PublicKey,
    id: i64,
    revision: u32,
) -> Result<Material, RolloutError> {
    let bad = |detail: String| RolloutError::Unreleasable { id, detail };
    let row = sqlx::query(
        "SELECT spec, cohort, manifest, manifest_digest, release_sig FROM revisions WHERE proposal_id = $1 AND revision = $2",
    )
    .bind(id)
    .bind(i64::from(revision))
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(RolloutError::NotFound(id))?;
    let spec: Spec = serde_json::from_str(&row.try_get::<String, _>("spec")?).map_err(|e| corrupt("revisions", e))?;
    let ids: Vec<String> =
        serde_json::from_str(&row.try_get::<String, _>("cohort")?).map_err(|e| corrupt("revisions", e))?;
    let body: Vec<u8> = row.try_get("manifest")?;
    let digest_hex: String = row.try_get("manifest_digest")?;
    let sig: Option<String> = row.try_get("release_sig")?;

    let signature = sig
        .as_deref()
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(Signature::from)
        .ok_or_else(|| bad("the revision carries no release signature".into()))?;
    airlock_proto::sig::verify(Domain::Manifest, &body, release_key, &signature)
        .map_err(|r| bad(format!("the release signature does not verify ({})", r.name())))?;
    if hex::encode(airlock_proto::manifest_digest(&body).0) != digest_hex {
        return Err(bad("the stored manifest digest does not match the manifest".into()));
    }
    let manifest: Manifest<'_> = airlock_proto::decode(&body).map_err(|r| bad(format!("manifest: {}", r.name())))?;
    if spec.rollout.digest() != manifest.rollout_plan {
        return Err(bad("the rollout plan does not match the signed plan digest".into()));
    }
    let kind = match manifest.action {
        Action::Firmware(_) => Kind::Firmware,
        Action::Config(_) => Kind::Config,
        Action::Decommission => Kind::Decommission,
    };
    let timeout_secs = crate::policy::load::duration_secs(&spec.rollout.device_timeout)
        .ok_or_else(|| bad(format!("device_timeout {:?}", spec.rollout.device_timeout)))?;
    if spec.rollout.waves.is_empty() {
        return Err(bad("the plan has no waves".into()));
    }
    let cohort = Cohort::new(ids).map_err(|e| bad(format!("cohort: {e}")))?;
    let approvals = approvals(conn, id, revision).await?;
    let m = Material {
        revision,
        kind,
        timeout_ms: i64::try_from(timeout_secs).unwrap_or(i64::MAX / 1000).saturating_mul(1000),
        plan: spec.rollout,
        cohort,
        manifest: SignedOwned { body, signer: *release_key, signature },
        approvals,
        digest_hex,
    };
    // The cohort must be the signed one: root and size.
    m.release()?;
    Ok(m)
}

/// The valid approvals of a revision: not voided, decision approve.
async fn approvals(conn: &mut AnyConnection, id: i64, revision: u32) -> Result<Vec<Approval>, RolloutError> {
    let rows = sqlx::query(
        "SELECT public_key, signature FROM approvals WHERE proposal_id = $1 AND revision = $2 AND decision = $3 \
         AND voided = $4 ORDER BY at, approver",
    )
    .bind(id)
    .bind(i64::from(revision))
    .bind("approve")
    .bind(false)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let key: String = r.try_get("public_key")?;
            let sig: String = r.try_get("signature")?;
            let approver = crate::keys::parse_public(&key).ok_or_else(|| corrupt("approvals", "public_key"))?;
            let signature = hex::decode(&sig)
                .ok()
                .and_then(|b| <[u8; 64]>::try_from(b).ok())
                .ok_or_else(|| corrupt("approvals", "signature"))?;
            Ok(Approval { approver, decision: Decision::Approve, signature: Signature::from(signature) })
        })
        .collect()
}
