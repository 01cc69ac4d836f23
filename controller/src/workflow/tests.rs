//! Workflow tests, each run on SQLite and on PostgreSQL (skipped loudly without
//! `AIRLOCK_TEST_POSTGRES_URL`).

use super::spec::{ConfigSpec, ConfigValue, FirmwareSpec, RollbackSpec, Spec};
use super::*;
use crate::audit::AuditKey;
use crate::policy::{load_sources, Kind};
use crate::registry::{Device, Selector};
use crate::store::testing::{self, TestStore};
use crate::trust::{device_roles, issue, Roster};
use crate::users::User;
use airlock_proto::build::approve;
use airlock_proto::{Approver, Decision};
use std::collections::BTreeMap;

const POLICY: &str = include_str!("../../../policies/default.toml");
/// 2026-11-25 (a Wednesday) 12:00 UTC.
const T0: i64 = 1_795_608_000_000;
const HOUR: i64 = 3_600_000;

struct World {
    wf: Workflow,
    keys: BTreeMap<String, ed25519_dalek::SigningKey>,
    users: BTreeMap<String, User>,
    _store: TestStore,
}

fn seed(name: &str) -> ed25519_dalek::SigningKey {
    use sha2::Digest as _;
    ed25519_dalek::SigningKey::from_bytes(&sha2::Sha256::digest(name.as_bytes()).into())
}

async fn world(t: TestStore) -> World {
    let policy = load_sources(vec![("default.toml".into(), POLICY.into())]).unwrap();
    let people: [(&str, &[&str]); 8] = [
        ("rita", &["requester"]),
        ("alice", &["approver", "requester"]),
        ("bob", &["approver"]),
        ("carol", &["approver", "security", "expert"]),
        ("erin", &["expert"]),
        ("frank", &["approver"]),
        ("grace", &["break_glass"]),
        ("mallory", &["approver"]),
    ];
    let mut keys = BTreeMap::new();
    let mut users = BTreeMap::new();
    let mut conn = t.store.pool().acquire().await.unwrap();
    for (name, roles) in people {
        let k = seed(name);
        let u = User {
            name: name.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            public_key: Some(crate::keys::public_hex(&k)),
        };
        crate::users::create(&mut conn, &u, &format!("token-{name}"), T0).await.unwrap();
        keys.insert(name.to_string(), k);
        users.insert(name.to_string(), u);
    }
    for i in 0..200 {
        let d = Device {
            id: format!("dev-{i:04}"),
            public_key: "00".repeat(32),
            hardware: "gw-m4".into(),
            region: ["eu", "us"][i % 2].into(),
            environment: if i < 180 { "production".into() } else { "lab".into() },
            firmware: "2.3.0".into(),
            tags: vec![],
            enrolled_at: T0,
        };
        crate::registry::upsert(&mut conn, &d).await.unwrap();
    }
    drop(conn);
    let roots = vec![seed("root-1"), seed("root-2")];
    let release = seed("release");
    let approvers = users
        .values()
        .filter(|u| u.is_approver())
        .map(|u| Approver {
            key: crate::keys::parse_public(u.public_key.as_deref().unwrap()).unwrap(),
            roles: device_roles(&u.roles),
        })
        .collect();
    let roster = Roster {
        version: 1,
        expires_at: (T0 / 1000) as u64 + 365 * 86_400,
        root_keys: &roots,
        threshold: 2,
        release_keys: vec![airlock_proto::sig::public_key(&release)],
        approvers,
    };
    let (root, bytes) = issue(&policy, &roster).unwrap();
    let wf = Workflow::new(
        t.store.clone(),
        policy,
        Trust { root, bytes },
        release,
        AuditKey::new(seed("audit")),
        Clock::fixed(T0),
    );
    World { wf, keys, users, _store: t }
}

fn firmware(selector: Selector) -> Spec {
    Spec {
        kind: Kind::Firmware,
        title: "Install fw 2.4.1 on EU gateways".into(),
        reason: "because 2.3.0 leaks memory under load".into(),
        cohort: selector,
        firmware: Some(FirmwareSpec {
            version: "2.4.1".into(),
            hardware: "gw-m4".into(),
            security_counter: 1,
            image_sha256: "ab".repeat(32),
            image_size: 262_144,
            chunk_size: None,
        }),
        config: None,
        rollout: Default::default(),
        rollback: RollbackSpec::Previous,
        security: false,
        break_glass: None,
        lifetime: None,
    }
}

fn production(share: f64) -> Selector {
    Selector { environment: vec!["production".into()], share: Some(share), ..Selector::default() }
}

/// A security fix for 5 production devices: two-person lane.
fn two_person() -> Spec {
    let mut s = firmware(production(5.0 / 180.0));
    s.security = true;
    s
}

impl World {
    fn user(&self, name: &str) -> &User {
        &self.users[name]
    }

    fn signature(&self, name: &str, view: &ProposalView, decision: Decision) -> String {
        let digest: [u8; 32] = hex::decode(&view.manifest_digest).unwrap().try_into().unwrap();
        hex::encode(approve(airlock_proto::Digest::from(digest), decision, &self.keys[name]).signature.0)
    }

    async fn decide(&self, name: &str, view: &ProposalView, decision: Decision) -> Result<ProposalView, WorkflowError> {
        let req = DecisionRequest {
            revision: view.revision,
            decision,
            signature: self.signature(name, view, decision),
            reason: "reviewed".into(),
            card_ms: None,
            diff_opened: None,
        };
        self.wf.decide(self.user(name), view.id, req).await
    }

    async fn audit_ok(&self) {
        let report = crate::audit::verify(self.wf.store.pool(), &self.wf.audit_key()).await.unwrap();
        assert!(report.is_ok(), "{report:?}");
    }
}

/// Runs an async test body against SQLite and against PostgreSQL.
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                let w = world(testing::sqlite().await.unwrap()).await;
                ($body)(w).await;
            }
            #[tokio::test]
            async fn postgres() {
                let Some(t) = testing::postgres(concat!("workflow::", stringify!($name))).await.unwrap() else {
                    return;
                };
                ($body)(world(t).await).await;
            }
        }
    };
}

both!(two_person_review_is_signed_after_two_distinct_approvers, |w: World| async move {
    let v = w.wf.propose(w.user("rita"), two_person()).await.unwrap();
    assert_eq!((v.state, v.tier), (State::AwaitingApproval, "two_person"));
    assert!(v.action.starts_with("Install firmware 2.4.1 on 5 devices because 2.3.0 leaks memory"), "{}", v.action);
    let v = w.decide("alice", &v, Decision::Approve).await.unwrap();
    assert_eq!((v.state, v.quorum.have, v.quorum.needed), (State::AwaitingApproval, 1, 2));
    let v = w.decide("carol", &v, Decision::Approve).await.unwrap();
    assert_eq!(v.state, State::Signed);
    // The release signature verifies over the manifest, and the quorum holds by the device check.
    let sig: [u8; 64] = hex::decode(v.release_signature.as_ref().unwrap()).unwrap().try_into().unwrap();
    let body = hex::decode(&v.manifest_hex).unwrap();
    airlock_proto::sig::verify(
        airlock_proto::Domain::Manifest,
        &body,
        &w.wf.release_key(),
        &airlock_proto::Signature::from(sig),
    )
    .unwrap();
    w.audit_ok().await;
});

both!(auto_pass_is_signed_at_once_and_logged, |w: World| async move {
    let lab = Selector { environment: vec!["lab".into()], ..Selector::default() };
    let v = w.wf.propose(w.user("rita"), firmware(lab)).await.unwrap();
    assert_eq!((v.state, v.tier), (State::Signed, "auto_pass"));
    let log = crate::audit::entries(w.wf.store.pool(), Some(v.id), 100).await.unwrap();
    let kinds: Vec<&str> = log.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["proposed", "tiered", "auto_passed", "signed"]);
    w.audit_ok().await;
});

both!(the_requester_cannot_approve_their_own_proposal, |w: World| async move {
    let v = w.wf.propose(w.user("alice"), two_person()).await.unwrap();
    let e = w.decide("alice", &v, Decision::Approve).await.unwrap_err();
    assert!(matches!(e, WorkflowError::SelfApproval(ref who) if who == "alice"), "{e}");
    assert!(e.to_string().starts_with("separation of duties: alice requested"), "{e}");
});

both!(the_same_approver_cannot_approve_twice, |w: World| async move {
    let v = w.wf.propose(w.user("rita"), two_person()).await.unwrap();
    let v = w.decide("alice", &v, Decision::Approve).await.unwrap();
    let e = w.decide("alice", &v, Decision::Approve).await.unwrap_err();
    assert!(matches!(e, WorkflowError::DuplicateApprover(_)), "{e}");
    assert_eq!(w.wf.view(v.id).await.unwrap().state, State::AwaitingApproval);
});

both!(an_expert_lane_refuses_an_approver_without_the_role, |w: World| async move {
    let mut spec = firmware(Selector { ids: vec!["dev-0001".into()], ..Selector::default() });
    spec.kind = Kind::Decommission;
    spec.firmware = None;
    let v = w.wf.propose(w.user("rita"), spec).await.unwrap();
    assert_eq!(v.tier, "expert");
    let e = w.decide("bob", &v, Decision::Approve).await.unwrap_err();
    assert!(matches!(e, WorkflowError::Forbidden { ref role, .. } if role.contains("expert")), "{e}");
    let v = w.decide("erin", &v, Decision::Approve).await.unwrap();
    let v = w.decide("carol", &v, Decision::Approve).await.unwrap();
    assert_eq!(v.state, State::Signed);
});

both!(an_approver_outside_the_routed_pools_is_refused, |w: World| async move {
    let v = w.wf.propose(w.user("rita"), two_person()).await.unwrap();
    // mallory holds the approver role but belongs to no pool.
    let e = w.decide("mallory", &v, Decision::Approve).await.unwrap_err();
    assert!(matches!(e, WorkflowError::Forbidden { .. }), "{e}");
});

both!(a_forged_or_wrong_digest_signature_is_refused, |w: World| async move {
    let v = w.wf.propose(w.user("rita"), two_person()).await.unwrap();
    // bob signs, but the request claims to be alice's.
    let forged = DecisionRequest {
        revision: v.revision,
        decision: Decision::Approve,
        signature: w.signature("bob", &v, Decision::Approve),
        reason: "x".into(),
        card_ms: None,
        diff_opened: None,
    };
    let e = w.wf.decide(w.user("alice"), v.id, forged).await.unwrap_err();
    assert!(matches!(e, WorkflowError::BadSignature { .. }), "{e}");
    // alice signs another digest.
    let other =
        hex::encode(approve(airlock_proto::Digest::from([7; 32]), Decision::Approve, &w.keys["alice"]).signature.0);
    let wrong = DecisionRequest {
        revision: v.revision,
        decision: Decision::Approve,
        signature: other,
        reason: "x".into(),
        card_ms: None,
        diff_opened: None,
    };
    let e = w.wf.decide(w.user("alice"), v.id, wrong).await.unwrap_err();
    assert!(matches!(e, WorkflowError::BadSignature { .. }), "{e}");
    // alice signs a rejection and submits it as an approval.
    let flipped = DecisionRequest {
        revision: v.revision,
        decision: Decision::Approve,
        signature: w.signature("alice", &v, Decision::Reject),
        reason: "x".into(),
        card_ms: None,
        diff_opened: None,
    };
    assert!(matches!(
        w.wf.decide(w.user("alice"), v.id, flipped).await.unwrap_err(),
        WorkflowError::BadSignature { .. }
    ));
    assert_eq!(w.wf.view(v.id).await.unwrap().quorum.have, 0);
});

both!(a_material_edit_voids_approvals_and_a_wording_edit_keeps_them, |w: World| async move {
    let v = w.wf.propose(w.user("rita"), two_person()).await.unwrap();
    let v = w.decide("alice", &v, Decision::Approve).await.unwrap();
    let mut wording = two_person();
    wording.title = "Install fw 2.4.1 on five EU gateways".into();
    let v2 = w.wf.edit(w.user("rita"), v.id, wording).await.unwrap();
    assert_eq!((v2.revision, v2.quorum.have), (2, 1), "nothing signed changed");
    assert_eq!(v2.manifest_digest, v.manifest_digest);
    // The card of the new revision still matches the bytes approvers sign, so it stays decidable.
    let card: crate::cli::types::ProposalView = serde_json::from_value(serde_json::to_value(&v2).unwrap()).unwrap();
    let local = crate::cli::manifest::inspect(&card).unwrap();
    assert!(local.disagreements.is_empty(), "{:?}", local.disagreements);
    let mut wider = two_person();
    wider.cohort = production(10.0 / 180.0);
    let v3 = w.wf.edit(w.user("rita"), v.id, wider).await.unwrap();
    assert_eq!((v3.revision, v3.quorum.have), (3, 0), "the cohort changed: approvals void");
    assert_ne!(v3.manifest_digest, v2.manifest_digest);
    // An approval of the old revision is refused as stale.
    let e = w.decide("carol", &v2, Decision::Approve).await.unwrap_err();
    assert!(matches!(e, WorkflowError::StaleRevision { given: 2, current: 3 }), "{e}");
    w.audit_ok().await;
});

both!(a_rollback_the_security_counter_rules_out_is_refused_at_propose_time, |w: World| async move {
    // Counter 1 signed for gw-m4 ...
    let v = w.wf.propose(w.user("rita"), two_person()).await.unwrap();
    let v = w.decide("alice", &v, Decision::Approve).await.unwrap();
    let v = w.decide("carol", &v, Decision::Approve).await.unwrap();
    assert_eq!(v.state, State::Signed);
    // ... so counter 2 with "rollback: previous" cannot keep its promise.
    let mut raised = two_person();
    raised.firmware.as_mut().unwrap().version = "2.5.0".into();
    raised.firmware.as_mut().unwrap().security_counter = 2;
    let e = w.wf.propose(w.user("rita"), raised.clone()).await.unwrap_err();
    assert!(e.to_string().contains("rollback \"previous\" cannot happen: security counter 2 rises above 1"), "{e}");
    // Saying so is accepted, and the tier accounts for it.
    raised.rollback = RollbackSpec::None;
    let v = w.wf.propose(w.user("rita"), raised).await.unwrap();
    assert_eq!(v.manifest.rollback, "none");
    // The same counter keeps the promise.
    let mut same = two_person();
    same.firmware.as_mut().unwrap().version = "2.5.1".into();
    w.wf.propose(w.user("rita"), same).await.unwrap();
});

both!(only_alternatives_that_are_really_safer_are_offered, |w: World| async move {
    // One device: a "canary" of it is the same device at the same tier, not safer.
    let one = firmware(Selector { ids: vec!["dev-0001".into()], ..Selector::default() });
    let v = w.wf.propose(w.user("rita"), one).await.unwrap();
    assert!(v.alternatives.is_empty(), "{:?}", v.alternatives.iter().map(|a| &a.label).collect::<Vec<_>>());
    // The whole production fleet: the canary reaches fewer devices, and says how many.
    let v = w.wf.propose(w.user("rita"), firmware(production(1.0))).await.unwrap();
    let canary = v.alternatives.iter().find(|a| a.label.starts_with("Canary only")).expect("a canary alternative");
    assert!(canary.label.contains("(2 devices, tier "), "{}", canary.label);
});

both!(an_edit_re_tiers_the_proposal, |w: World| async move {
    let v = w.wf.propose(w.user("rita"), two_person()).await.unwrap();
    let mut not_security = two_person();
    not_security.security = false;
    let v = w.wf.edit(w.user("rita"), v.id, not_security).await.unwrap();
    assert_eq!(v.tier, "single");
});

both!(a_timeout_escalates_then_expires, |w: World| async move {
    let mut spec = firmware(production(20.0 / 180.0)); // above 10%: single lane, 4h, escalates to fw-leads
    spec.security = false;
    let v = w.wf.propose(w.user("rita"), spec).await.unwrap();
    assert_eq!((v.tier, v.routed_to.clone()), ("single", vec!["fw-oncall".to_string()]));
    assert_eq!(w.wf.fire_due_timers().await.unwrap(), 0);
    w.wf.clock.advance(4 * HOUR + 1);
    assert_eq!(w.wf.fire_due_timers().await.unwrap(), 1);
    let v = w.wf.view(v.id).await.unwrap();
    assert_eq!((v.state, v.escalation_level), (State::AwaitingApproval, 1));
    assert_eq!(v.routed_to, ["fw-oncall", "fw-leads"]);
    // frank (fw-leads) may now approve; the timer fires only once.
    assert_eq!(w.wf.fire_due_timers().await.unwrap(), 0);
    w.wf.clock.advance(4 * HOUR + 1);
    assert_eq!(w.wf.fire_due_timers().await.unwrap(), 1);
    let v = w.wf.view(v.id).await.unwrap();
    assert_eq!(v.state, State::Expired);
    let e = w.decide("frank", &v, Decision::Approve).await.unwrap_err();
    assert!(matches!(e, WorkflowError::WrongState { state: "expired", .. }), "{e}");
    w.audit_ok().await;
});

both!(the_blocked_lane_cannot_be_approved, |w: World| async move {
    let mut spec = firmware(Selector { environment: vec!["production".into()], ..Selector::default() });
    spec.kind = Kind::Config;
    spec.firmware = None;
    spec.rollback = RollbackSpec::None;
    spec.config = Some(ConfigSpec {
        version: 2,
        values: BTreeMap::from([("interval".into(), ConfigValue { value: 60.into(), secret: false })]),
    });
    let v = w.wf.propose(w.user("rita"), spec).await.unwrap();
    assert_eq!((v.state, v.tier), (State::Blocked, "blocked"));
    let e = w.decide("alice", &v, Decision::Approve).await.unwrap_err();
    assert!(matches!(e, WorkflowError::WrongState { .. }), "{e}");
});

both!(break_glass_caps_are_enforced_and_a_post_review_opens, |w: World| async move {
    let mut spec = two_person();
    spec.break_glass = Some("CVE-2026-1234 exploited in the wild on these gateways".into());
    spec.cohort = production(20.0 / 180.0);
    let e = w.wf.propose(w.user("rita"), spec.clone()).await.unwrap_err();
    assert!(matches!(e, WorkflowError::BreakGlassCap(ref m) if m.contains("above the break-glass cap of 10")), "{e}");
    spec.cohort = production(5.0 / 180.0);
    spec.lifetime = Some("1d".into());
    let e = w.wf.propose(w.user("rita"), spec.clone()).await.unwrap_err();
    assert!(matches!(e, WorkflowError::BreakGlassCap(ref m) if m.contains("lifetime")), "{e}");
    spec.lifetime = None;
    spec.break_glass = Some("short".into());
    assert!(matches!(w.wf.propose(w.user("rita"), spec.clone()).await.unwrap_err(), WorkflowError::Spec(_)));
    spec.break_glass = Some("CVE-2026-1234 exploited in the wild on these gateways".into());
    let v = w.wf.propose(w.user("rita"), spec).await.unwrap();
    assert!(v.break_glass);
    assert!(matches!(w.decide("alice", &v, Decision::Approve).await.unwrap_err(), WorkflowError::Forbidden { .. }));
    let v = w.decide("grace", &v, Decision::Approve).await.unwrap();
    assert_eq!(v.state, State::Signed);
    assert!(v.manifest.expires_at - v.manifest.issued_at <= 7200);
    let mut conn = w.wf.store.pool().acquire().await.unwrap();
    let tasks = repo::open_tasks(&mut conn).await.unwrap();
    assert_eq!((tasks.len(), tasks[0].pool.as_str()), (1, "security"));
    drop(conn);
    let log = crate::audit::entries(w.wf.store.pool(), Some(v.id), 100).await.unwrap();
    assert!(log.iter().any(|e| e.kind == "break_glass"));
    w.audit_ok().await;
});

both!(a_rejection_ends_the_proposal, |w: World| async move {
    let v = w.wf.propose(w.user("rita"), two_person()).await.unwrap();
    let v = w.decide("alice", &v, Decision::Reject).await.unwrap();
    assert_eq!(v.state, State::Rejected);
    assert!(matches!(w.decide("carol", &v, Decision::Approve).await.unwrap_err(), WorkflowError::WrongState { .. }));
});

both!(secret_config_values_never_appear_in_views, |w: World| async move {
    let mut spec = firmware(Selector { ids: vec!["dev-0001".into(), "dev-0002".into()], ..Selector::default() });
    spec.kind = Kind::Config;
    spec.firmware = None;
    spec.config = Some(ConfigSpec {
        version: 3,
        values: BTreeMap::from([
            ("api_token".into(), ConfigValue { value: "s3cr3t-hunter2".into(), secret: true }),
            ("interval".into(), ConfigValue { value: 30.into(), secret: false }),
        ]),
    });
    let v = w.wf.propose(w.user("rita"), spec).await.unwrap();
    let json = serde_json::to_string(&v).unwrap();
    assert!(!json.contains("hunter2"), "secret in the view");
    assert!(
        !String::from_utf8_lossy(&hex::decode(&v.manifest_hex).unwrap()).contains("hunter2"),
        "secret in the signed bytes"
    );
    assert!(json.contains("secret_sha256"));
    // An edit made from the card (redacted) keeps the secret's commitment unchanged.
    let mut from_card = v.spec.clone();
    from_card.title = "Rotate interval".into();
    let v2 = w.wf.edit(w.user("rita"), v.id, from_card).await.unwrap();
    assert_eq!(v2.manifest_digest, v.manifest_digest);
    let log = crate::audit::entries(w.wf.store.pool(), Some(v.id), 100).await.unwrap();
    assert!(!serde_json::to_string(&log.iter().map(|e| &e.body).collect::<Vec<_>>()).unwrap().contains("hunter2"));
});

both!(state_survives_reopening_the_database, |w: World| async move {
    let v = w.wf.propose(w.user("rita"), two_person()).await.unwrap();
    w.decide("alice", &v, Decision::Approve).await.unwrap();
    let reopened = crate::store::Store::open(&w._store.url).await.unwrap();
    let wf2 = Workflow { store: reopened, ..w.wf.clone() };
    let again = wf2.view(v.id).await.unwrap();
    assert_eq!((again.state, again.quorum.have), (State::AwaitingApproval, 1));
});
