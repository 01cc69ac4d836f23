//! The test world: a workflow on a fresh store with 200 production and 20 lab devices, each also
//! a provisioned virtual device behind the fake transport, and a signed firmware proposal.

use super::fake::{FakeTransport, Fleet};
use crate::audit::AuditKey;
use crate::policy::{load_sources, Kind};
use crate::registry::{Device, Selector};
use crate::rollout::{Engine, RolloutState, RolloutStatus};
use crate::store::testing::TestStore;
use crate::trust::{device_roles, issue, Roster};
use crate::users::User;
use crate::workflow::spec::{ConfigSpec, ConfigValue, FirmwareSpec, RollbackSpec, RolloutPlan, Spec};
use crate::workflow::{Clock, DecisionRequest, State, Trust, Workflow};
use airlock_agent_core::harness::VirtualDevice;
use airlock_agent_core::mem_flash::MemFlash;
use airlock_agent_core::{Factory, Identity, Layout};
use airlock_proto::build::approve;
use airlock_proto::{Approver, Decision, Tier, Version};
use std::collections::BTreeMap;
use std::sync::Arc;

const POLICY: &str = include_str!("../../../../policies/default.toml");
/// 2026-11-25 (a Wednesday) 12:00 UTC.
pub const T0: i64 = 1_795_608_000_000;
pub const SECOND: i64 = 1000;
pub const MINUTE: i64 = 60 * SECOND;
pub const COHORT: usize = 200;
pub const LAB: usize = 20;
const IMAGE_SIZE: usize = 6000;

pub struct World {
    pub wf: Workflow,
    pub fake: FakeTransport,
    pub users: BTreeMap<String, User>,
    keys: BTreeMap<String, ed25519_dalek::SigningKey>,
    image: Arc<Vec<u8>>,
    pub store: TestStore,
}

fn seed(name: &str) -> ed25519_dalek::SigningKey {
    use sha2::Digest as _;
    ed25519_dalek::SigningKey::from_bytes(&sha2::Sha256::digest(name.as_bytes()).into())
}

pub fn cohort_id(i: usize) -> String {
    format!("dev-{i:04}")
}

pub async fn world(t: TestStore) -> World {
    let policy = load_sources(vec![("default.toml".into(), POLICY.into())]).unwrap();
    let people: [(&str, &[&str]); 4] = [
        ("rita", &["requester"]),
        ("alice", &["approver", "requester"]),
        ("bob", &["approver"]),
        ("erin", &["expert"]),
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
    let ids: Vec<(String, &str)> = (0..COHORT)
        .map(|i| (cohort_id(i), "production"))
        .chain((0..LAB).map(|i| (format!("lab-{i:04}"), "lab")))
        .collect();
    for (id, environment) in &ids {
        let d = Device {
            id: id.clone(),
            public_key: "00".repeat(32),
            hardware: "gw-m4".into(),
            region: "eu".into(),
            environment: environment.to_string(),
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
    let clock = Clock::fixed(T0);
    let image: Arc<Vec<u8>> = Arc::new((0..IMAGE_SIZE).map(|i| (i * 31 % 251) as u8).collect());
    let mut fleet = Fleet::default();
    let factory_image = vec![0x5A; 4096];
    let factory = Factory { version: Version::new(2, 3, 0), security_counter: 1, size: factory_image.len() as u32 };
    let layout = Layout::contiguous(MemFlash::ERASE as u32, 8192);
    for (i, (id, _)) in ids.iter().enumerate() {
        let identity = Identity {
            device_id: id.as_str().try_into().unwrap(),
            hardware: "gw-m4".try_into().unwrap(),
            min_tier: Tier::AutoPass,
            key_seed: [(i % 251) as u8; 32],
        };
        let d =
            VirtualDevice::provision(identity, &bytes, &factory_image, factory, layout, (T0 / 1000) as u64).unwrap();
        fleet.devices.insert(id.clone(), d);
    }
    let wf = Workflow::new(
        t.store.clone(),
        policy,
        Trust { root, bytes },
        release,
        AuditKey::new(seed("audit")),
        clock.clone(),
    );
    let fake = FakeTransport::new(fleet, clock, Arc::clone(&image));
    World { wf, fake, users, keys, image, store: t }
}

impl World {
    pub fn user(&self, name: &str) -> &User {
        &self.users[name]
    }

    /// Firmware 2.4.1 (the image the fake serves) for every production device.
    pub fn spec(&self, plan: RolloutPlan) -> Spec {
        use sha2::Digest as _;
        Spec {
            kind: Kind::Firmware,
            title: "Install fw 2.4.1 on the production gateways".into(),
            reason: "because 2.3.0 leaks memory under load".into(),
            cohort: Selector { environment: vec!["production".into()], ..Selector::default() },
            firmware: Some(FirmwareSpec {
                version: "2.4.1".into(),
                hardware: "gw-m4".into(),
                security_counter: 1,
                image_sha256: hex::encode(sha2::Sha256::digest(self.image.as_slice())),
                image_size: self.image.len() as u32,
                chunk_size: None,
            }),
            config: None,
            rollout: plan,
            rollback: RollbackSpec::Previous,
            security: false,
            break_glass: None,
            lifetime: None,
        }
    }

    /// A config push (version 1 of `interval`) to every production device.
    pub fn config_spec(&self, plan: RolloutPlan) -> Spec {
        let values = BTreeMap::from([("interval".into(), ConfigValue { value: 60.into(), secret: false })]);
        Spec { kind: Kind::Config, firmware: None, config: Some(ConfigSpec { version: 1, values }), ..self.spec(plan) }
    }

    /// Proposes `plan` as rita, approved by alice: a signed proposal, its id.
    pub async fn signed(&self, plan: RolloutPlan) -> i64 {
        self.signed_spec("rita", "alice", self.spec(plan)).await
    }

    /// Proposes `spec` as `requester`, approved by `approver`: a signed proposal, its id.
    pub async fn signed_spec(&self, requester: &str, approver: &str, spec: Spec) -> i64 {
        let v = self.wf.propose(self.user(requester), spec).await.unwrap();
        assert_eq!((v.state, v.tier), (State::AwaitingApproval, "single"));
        let digest: [u8; 32] = hex::decode(&v.manifest_digest).unwrap().try_into().unwrap();
        let sig = approve(airlock_proto::Digest::from(digest), Decision::Approve, &self.keys[approver]).signature;
        let req = DecisionRequest {
            revision: v.revision,
            decision: Decision::Approve,
            signature: hex::encode(sig.0),
            reason: "reviewed".into(),
            card_ms: None,
            diff_opened: None,
        };
        let v = self.wf.decide(self.user(approver), v.id, req).await.unwrap();
        assert_eq!(v.state, State::Signed);
        v.id
    }

    pub fn engine(&self) -> Engine<FakeTransport> {
        Engine::new(self.wf.clone(), self.fake.clone())
    }

    /// A new engine on a freshly opened store: what a restarted controller builds.
    pub async fn restarted(&self) -> Engine<FakeTransport> {
        let store = crate::store::Store::open(&self.store.url).await.unwrap();
        let wf = Workflow::new(
            store,
            (*self.wf.policy).clone(),
            (*self.wf.trust).clone(),
            seed("release"),
            AuditKey::new(seed("audit")),
            self.wf.clock.clone(),
        );
        Engine::new(wf, self.fake.clone())
    }

    /// Hands every queued report to the engine (reports may cause commands, hence more reports).
    pub async fn pump(&self, engine: &Engine<FakeTransport>) {
        loop {
            let reports = self.fake.take_reports();
            if reports.is_empty() {
                break;
            }
            for r in reports {
                engine.on_report(r).await.unwrap();
            }
        }
    }

    /// One second of controller life: a tick, then the reports.
    pub async fn step(&self, engine: &Engine<FakeTransport>) {
        engine.tick().await.unwrap();
        self.pump(engine).await;
        self.wf.clock.advance(SECOND);
    }

    /// Steps until the rollout stops rolling out (or `max` steps).
    pub async fn run(&self, engine: &Engine<FakeTransport>, id: i64, max: usize) -> RolloutStatus {
        for _ in 0..max {
            self.step(engine).await;
            let s = engine.status(id).await.unwrap();
            if s.state != RolloutState::RollingOut {
                return s;
            }
        }
        engine.status(id).await.unwrap()
    }

    pub async fn proposal_state(&self, id: i64) -> State {
        self.wf.view(id).await.unwrap().state
    }

    /// Audit entry kinds of a proposal, in order.
    pub async fn audit_kinds(&self, id: i64) -> Vec<String> {
        let log = crate::audit::entries(self.wf.store.pool(), Some(id), 1000).await.unwrap();
        log.into_iter().map(|e| e.kind).collect()
    }

    pub async fn audit_ok(&self) {
        let report = crate::audit::verify(self.wf.store.pool(), &self.wf.audit_key()).await.unwrap();
        assert!(report.is_ok(), "{report:?}");
    }

    /// The cohort's devices in wave `wave` of `shares`, as the engine assigns them.
    pub fn wave_members(shares: &[f64], wave: u32) -> Vec<String> {
        let ids: Vec<String> = (0..COHORT).map(cohort_id).collect();
        crate::rollout::plan::assign_waves(shares, &ids).into_iter().filter(|a| a.1 == wave).map(|a| a.0).collect()
    }
}
