//! The `airlock` client against a real controller (`server::start` + `server::run` on an
//! ephemeral port, temp data directory, the shipped policy): enrol, propose the example specs,
//! approve with the first-run key files through the same functions the commands use, and watch
//! the proposals get signed. And against a lying controller: a card whose digest does not match
//! its manifest is never signed, and nothing is posted.

// A test crate: its helpers assert by unwrapping, like its tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_controller::cli::client::{self, parse, Client};
use airlock_controller::cli::types::ProposalView;
use airlock_controller::cli::{spec_file, CliError};
use airlock_controller::registry::Device;
use airlock_controller::server::{self, Config};
use airlock_controller::workflow::Clock;
use airlock_proto::Decision;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Controller {
    base: String,
    tokens: BTreeMap<String, String>,
    data: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Controller {
    async fn start() -> Controller {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().join("data"),
            policies: airlock_controller::policy::testing::copy_without_calendar_rules(
                &repo().join("policies"),
                &dir.path().join("policies"),
            )
            .unwrap(),
            ..Config::default()
        };
        let (state, first) = server::start(&config, Clock::system()).await.unwrap();
        let tokens = first.users.iter().map(|(u, t)| (u.name.clone(), t.clone())).collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(server::run(listener, state, async move {
            let _ = stopped.await;
        }));
        Controller { base, tokens, data: config.data_dir, stop: Some(stop), served, _dir: dir }
    }

    fn client(&self, who: &str) -> Client {
        Client::new(&self.base, Some(&self.tokens[who])).unwrap()
    }

    fn key(&self, who: &str) -> ed25519_dalek::SigningKey {
        airlock_controller::keys::read(&self.data.join("keys/users").join(format!("{who}.key"))).unwrap()
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.served.await.unwrap().unwrap();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example(name: &str) -> airlock_controller::workflow::Spec {
    spec_file::read(&repo().join("examples/proposals").join(name)).unwrap()
}

/// 40 production gw-m4 gateways in two EU regions and one US region.
async fn enrol_fleet(admin: &Client) {
    for i in 1..=40u8 {
        let key = ed25519_dalek::SigningKey::from_bytes(&[i; 32]);
        let region = ["eu-west", "eu-central", "us-east"][usize::from(i % 3)];
        let d = Device {
            id: format!("gw-{i:04}"),
            public_key: airlock_controller::keys::public_hex(&key),
            hardware: "gw-m4".into(),
            region: region.into(),
            environment: "production".into(),
            firmware: "2.4.1".into(),
            tags: vec![],
            enrolled_at: 0,
        };
        client::enroll(admin, &d).await.unwrap();
    }
}

async fn view(c: &Client, id: i64) -> ProposalView {
    parse("show", client::proposal(c, id).await.unwrap()).unwrap()
}

#[tokio::test]
async fn proposals_from_the_examples_are_approved_with_local_signatures_and_signed() {
    let ctl = Controller::start().await;
    enrol_fleet(&ctl.client("admin")).await;
    let rita = ctl.client("rita");

    // The canary: default tier (single), one approver.
    let v: ProposalView =
        parse("propose", client::propose(&rita, &example("firmware-canary.toml")).await.unwrap()).unwrap();
    assert_eq!((v.state.as_str(), v.tier.as_str(), v.quorum.needed), ("awaiting_approval", "single", 1));
    let after = airlock_controller::cli::decide(&ctl.client("alice"), v.id, Decision::Approve, &ctl.key("alice"), "ok")
        .await
        .unwrap();
    let after: ProposalView = parse("decide", after).unwrap();
    assert_eq!(after.state, "signed");
    assert!(after.release_signature.is_some());

    // The security fix: two_person; an edit that changes the signed bytes voids the approval.
    let fix = example("security-fix.toml");
    let v: ProposalView = parse("propose", client::propose(&rita, &fix).await.unwrap()).unwrap();
    assert_eq!((v.tier.as_str(), v.quorum.needed), ("two_person", 2));
    airlock_controller::cli::decide(&ctl.client("alice"), v.id, Decision::Approve, &ctl.key("alice"), "ok")
        .await
        .unwrap();
    assert_eq!(view(&rita, v.id).await.quorum.approvers, ["alice"]);
    let mut slower = fix.clone();
    slower.rollout.rate_per_sec = 10;
    let edited: ProposalView = parse("edit", client::revise(&rita, v.id, &slower).await.unwrap()).unwrap();
    assert_eq!((edited.revision, edited.quorum.have), (2, 0));
    airlock_controller::cli::decide(&ctl.client("alice"), v.id, Decision::Approve, &ctl.key("alice"), "ok")
        .await
        .unwrap();
    let done = airlock_controller::cli::decide(&ctl.client("carol"), v.id, Decision::Approve, &ctl.key("carol"), "ok")
        .await
        .unwrap();
    let done: ProposalView = parse("decide", done).unwrap();
    assert_eq!(done.state, "signed");
    assert_eq!(done.quorum.approvers, ["alice", "carol"]);

    // The server's refusals come back as its message and status.
    let again =
        airlock_controller::cli::decide(&ctl.client("bob"), v.id, Decision::Approve, &ctl.key("bob"), "late").await;
    match again {
        Err(CliError::Http { status: 409, message }) => assert!(message.contains("signed"), "{message}"),
        other => panic!("expected a 409, got {other:?}"),
    }
    ctl.stop().await;
}

#[tokio::test]
async fn a_requester_cannot_decide_and_the_servers_message_comes_back() {
    let ctl = Controller::start().await;
    enrol_fleet(&ctl.client("admin")).await;
    let v: ProposalView =
        parse("propose", client::propose(&ctl.client("rita"), &example("firmware-canary.toml")).await.unwrap())
            .unwrap();
    // Rita has no approver key: sign with alice's key under rita's token.
    let e = airlock_controller::cli::decide(&ctl.client("rita"), v.id, Decision::Approve, &ctl.key("alice"), "mine")
        .await
        .unwrap_err();
    match &e {
        CliError::Http { status: 403, message } => assert!(message.contains("rita"), "{message}"),
        other => panic!("expected a 403, got {other:?}"),
    }
    ctl.stop().await;
}

/// A controller that serves a real card with a forged `manifest_digest` and counts decisions.
async fn lying_controller(card: serde_json::Value) -> (String, Arc<AtomicUsize>) {
    use axum::routing::{get, post};
    let posted = Arc::new(AtomicUsize::new(0));
    let counter = posted.clone();
    let app = axum::Router::new()
        .route("/api/proposals/{id}", get(move || std::future::ready(axum::Json(card.clone()))))
        .route(
            "/api/proposals/{id}/decisions",
            post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                std::future::ready(axum::Json(serde_json::Value::Null))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, posted)
}

#[tokio::test]
async fn a_card_whose_digest_does_not_match_its_manifest_is_never_signed() {
    let ctl = Controller::start().await;
    enrol_fleet(&ctl.client("admin")).await;
    let rita = ctl.client("rita");
    let card = client::propose(&rita, &example("firmware-canary.toml")).await.unwrap();
    let id = card["id"].as_i64().unwrap();
    let mut forged = card.clone();
    forged["manifest_digest"] = serde_json::Value::String("00".repeat(32));
    let (base, posted) = lying_controller(forged).await;
    let liar = Client::new(&base, Some("any")).unwrap();
    let e = airlock_controller::cli::decide(&liar, id, Decision::Approve, &ctl.key("alice"), "ok").await.unwrap_err();
    match &e {
        CliError::Manifest(m) => assert!(m.contains("differs from the server's"), "{m}"),
        other => panic!("expected a refusal to sign, got {other:?}"),
    }
    assert_eq!(posted.load(Ordering::SeqCst), 0, "a decision was posted");
    // The honest card from the same bytes goes through the same code and is posted.
    let (base, posted) = lying_controller(card).await;
    let honest = Client::new(&base, Some("any")).unwrap();
    airlock_controller::cli::decide(&honest, id, Decision::Approve, &ctl.key("alice"), "ok").await.unwrap();
    assert_eq!(posted.load(Ordering::SeqCst), 1);
    ctl.stop().await;
}
