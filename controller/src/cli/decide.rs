//! `approve` and `reject`: fetch the card, decode the manifest and compute its digest here,
//! refuse on any disagreement with the server, show the decoded fields, confirm, sign the digest
//! with the approver's own key (`airlock_proto::build::approve`) and submit the signature.
//! The key never leaves this process.

use super::client::{self, parse, Client};
use super::manifest::{self, Checked};
use super::types::{tier_name, ProposalView};
use super::{note, out, out_json, CliError, Ctx};
use crate::users::User;
use crate::workflow::DecisionRequest;
use airlock_proto::Decision;
use ed25519_dalek::SigningKey;
use serde_json::Value;
use std::io::IsTerminal as _;
use std::path::PathBuf;

/// One `approve` or `reject` invocation.
#[derive(Debug)]
pub struct Decide {
    /// Proposal id.
    pub id: i64,
    /// Key file.
    pub key: PathBuf,
    /// Reason.
    pub reason: String,
    /// Skip confirmation.
    pub yes: bool,
    /// Approve (else reject).
    pub approve: bool,
}

/// Runs `approve` / `reject`.
pub async fn run(ctx: &Ctx, d: Decide) -> Result<(), CliError> {
    let key = crate::keys::read(&d.key)?;
    // Scripts must say --yes: refuse before anything is fetched.
    if !d.yes && !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(
            "not signing: stdin is not a terminal, so nobody can confirm; pass --yes to sign without asking".into(),
        ));
    }
    let decision = if d.approve { Decision::Approve } else { Decision::Reject };
    let c = ctx.client()?;
    let me: User = parse("GET /api/me", c.get("/api/me").await?)?;
    let (view, checked) = fetch(&c, d.id).await?;
    preflight(&me, &view, &key, &d.key)?;
    let m = checked.manifest()?;
    let verb = if d.approve { "APPROVE" } else { "REJECT" };
    let shown = format!(
        "You are about to {verb} proposal {} revision {} ({}):\n{}\n\n{}  {:<17}{} (computed here; matches the server's)\n  {:<17}{}\n",
        view.id,
        view.revision,
        view.state,
        view.action,
        manifest::block(&m),
        "digest",
        hex::encode(checked.digest.0),
        "signing as",
        crate::keys::public_hex(&key),
    );
    if ctx.json {
        note(&shown);
    } else {
        out(&shown)?;
    }
    confirm(d.yes, &format!("{} proposal {} revision {}", verb.to_lowercase(), view.id, view.revision))?;
    let v = submit(&c, &view, &checked, decision, &key, &d.reason).await?;
    if ctx.json {
        return out_json(&v);
    }
    let after: ProposalView = parse("POST /api/proposals/{id}/decisions", v)?;
    out(&outcome(&after))
}

/// Fetches proposal `id` and checks its manifest locally: the bytes decode as devices decode
/// them, the digest computed here is the server's, the card matches the bytes.
pub async fn fetch(c: &Client, id: i64) -> Result<(ProposalView, Checked), CliError> {
    let view: ProposalView = parse("GET /api/proposals/{id}", client::proposal(c, id).await?)?;
    let checked = manifest::check(&view)?;
    Ok((view, checked))
}

/// The request for a checked manifest: the approval statement over the digest computed here,
/// signed with `key`.
pub fn request(
    view: &ProposalView,
    checked: &Checked,
    decision: Decision,
    key: &SigningKey,
    reason: &str,
) -> DecisionRequest {
    let approval = airlock_proto::build::approve(checked.digest, decision, key);
    DecisionRequest {
        revision: view.revision,
        decision,
        signature: hex::encode(approval.signature.0),
        reason: reason.to_string(),
        card_ms: None,
        diff_opened: None,
    }
}

/// Signs and posts a decision on an already checked manifest.
pub async fn submit(
    c: &Client,
    view: &ProposalView,
    checked: &Checked,
    decision: Decision,
    key: &SigningKey,
    reason: &str,
) -> Result<Value, CliError> {
    client::decide(c, view.id, &request(view, checked, decision, key, reason)).await
}

/// Fetch, check, sign and submit without asking: for scripts and tests.
pub async fn decide(
    c: &Client,
    id: i64,
    decision: Decision,
    key: &SigningKey,
    reason: &str,
) -> Result<Value, CliError> {
    let (view, checked) = fetch(c, id).await?;
    submit(c, &view, &checked, decision, key, reason).await
}

/// Refuses early, and clearly: first the requester deciding on their own proposal (separation
/// of duties, whatever their keys), then a key file that is not the caller's registered key.
fn preflight(me: &User, view: &ProposalView, key: &SigningKey, path: &std::path::Path) -> Result<(), CliError> {
    if me.name == view.requester {
        return Err(CliError::Usage(format!(
            "separation of duties: {} requested proposal {} and cannot approve or reject it; \
             an approver from its pools must decide",
            me.name, view.id
        )));
    }
    let mine = crate::keys::public_hex(key);
    match me.public_key.as_deref() {
        Some(k) if k.eq_ignore_ascii_case(&mine) => Ok(()),
        Some(k) => Err(CliError::Usage(format!(
            "{} holds public key {mine}, but the controller knows {} by {k}: use your own key file",
            path.display(),
            me.name
        ))),
        None => Err(CliError::Usage(format!(
            "{} has no approver key on the controller: an admin must register one",
            me.name
        ))),
    }
}

/// Asks on the terminal unless `yes`; refuses when nobody can answer.
fn confirm(yes: bool, what: &str) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::Usage(format!(
            "not signing: stdin is not a terminal, so nobody can confirm; pass --yes to {what} without asking"
        )));
    }
    note(&format!("Sign and {what}? [y/N] "));
    let mut answer = String::new();
    stdin.read_line(&mut answer).map_err(|e| CliError::io("reading the confirmation", e))?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(CliError::Failed("not signed: nothing was sent".into()))
    }
}

/// The state and quorum after a decision.
pub fn outcome(v: &ProposalView) -> String {
    let q = &v.quorum;
    let who = if q.approvers.is_empty() { String::new() } else { format!(" ({})", q.approvers.join(", ")) };
    let mut o = format!(
        "proposal {} is now {} (tier {}): quorum {} of {}{who}\n",
        v.id,
        v.state,
        tier_name(&v.tier),
        q.have,
        q.needed
    );
    if let Some(sig) = &v.release_signature {
        o.push_str(&format!("signed with the release key: {sig}\n"));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::manifest::tests::view;

    #[test]
    fn a_requester_without_a_key_is_told_separation_of_duties_not_no_key() {
        let v = view();
        let key = SigningKey::from_bytes(&[7; 32]);
        let rita = User { name: v.requester.clone(), roles: vec!["requester".into()], public_key: None };
        let e = preflight(&rita, &v, &key, std::path::Path::new("rita.key")).unwrap_err().to_string();
        assert!(e.contains("separation of duties: rita requested proposal 7"), "{e}");
        // Anyone else without a key is told about the key.
        let bob = User { name: "bob".into(), ..rita };
        let e = preflight(&bob, &v, &key, std::path::Path::new("bob.key")).unwrap_err().to_string();
        assert!(e.contains("bob has no approver key"), "{e}");
    }

    #[test]
    fn the_signature_is_over_the_digest_computed_here_and_verifies() {
        let v = view();
        let checked = manifest::check(&v).unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let req = request(&v, &checked, Decision::Approve, &key, "ok");
        assert_eq!(req.revision, 2);
        assert_eq!(req.decision, Decision::Approve);
        let sig: [u8; 64] = hex::decode(&req.signature).unwrap().try_into().unwrap();
        let approval = airlock_proto::Approval {
            approver: airlock_proto::sig::public_key(&key),
            decision: Decision::Approve,
            signature: airlock_proto::Signature::from(sig),
        };
        let bytes = hex::decode(&v.manifest_hex).unwrap();
        approval.verify(airlock_proto::manifest_digest(&bytes)).unwrap();
        // ... and not as a rejection, nor over another digest.
        let as_reject = airlock_proto::Approval { decision: Decision::Reject, ..approval };
        assert_eq!(
            as_reject.verify(airlock_proto::manifest_digest(&bytes)),
            Err(airlock_proto::Refusal::BadApprovalSignature)
        );
    }

    #[test]
    fn nothing_is_signed_when_the_servers_digest_differs() {
        let mut v = view();
        v.manifest_digest = "ff".repeat(32);
        // `fetch` runs exactly this check before anything is signed.
        let e = manifest::check(&v).unwrap_err();
        assert!(matches!(&e, CliError::Manifest(m) if m.contains("differs from the server's")), "{e}");
    }

    #[test]
    fn without_yes_and_without_a_terminal_it_refuses() {
        // `cargo test` runs with stdin not a terminal (or redirected); skip when it is one.
        if std::io::stdin().is_terminal() {
            return;
        }
        let e = confirm(false, "approve proposal 7 revision 2").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("pass --yes"), "{e}");
        assert!(confirm(true, "x").is_ok());
    }

    #[test]
    fn the_outcome_names_state_and_quorum() {
        assert_eq!(outcome(&view()), "proposal 7 is now awaiting_approval (tier two_person): quorum 1 of 2 (alice)\n");
    }
}
