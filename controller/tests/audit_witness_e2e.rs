//! The audit witness on a real controller (`server::start` + `server::run` on an ephemeral port,
//! SQLite in a temp data directory): the server keeps `AUDIT/audit.witness` outside the data
//! directory, and `airlock audit verify --against` catches the newest entries deleted together
//! with their checkpoints, which the trail alone verifies as clean.

// A test crate: its helpers assert by unwrapping, like its tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_controller::cli::{self, client, Cli, CliError};
use airlock_controller::registry::Device;
use airlock_controller::server::{self, Config};
use airlock_controller::workflow::Clock;
use clap::Parser as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn verify(base: &str, token: &str, against: &Path) -> Result<(), CliError> {
    let args = ["airlock", "--server", base, "--token", token, "audit", "verify", "--against"];
    let cli = Cli::try_parse_from(args.iter().copied().chain([against.to_str().unwrap()])).unwrap();
    cli::run(cli).await
}

/// Lines in the witness file.
fn witnessed(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

async fn sql(url: &str, statements: &[&str]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    for s in statements {
        sqlx::query(sqlx::AssertSqlSafe(s.to_string())).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

#[tokio::test]
async fn the_witness_outside_the_data_directory_catches_a_truncated_trail() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = Config {
        data_dir: data.clone(),
        policies: airlock_controller::policy::testing::copy_without_calendar_rules(
            &repo().join("policies"),
            &dir.path().join("policies"),
        )
        .unwrap(),
        ..Config::default()
    };
    let (state, first) = server::start(&config, Clock::system()).await.unwrap();
    // The audit key and witness live beside the data directory, not in it.
    let audit_dir = dir.path().join("data-audit");
    assert!(audit_dir.join("audit.key").exists());
    assert!(!data.join("keys/audit.key").exists());
    let witness = audit_dir.join("audit.witness");
    let token = first.users.iter().find(|(u, _)| u.name == "admin").map(|(_, t)| t.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::run(listener, state, async move {
        let _ = stopped.await;
    }));

    // Enrolments are audited: five entries.
    let admin = client::Client::new(&base, Some(&token)).unwrap();
    for i in 1..=5u8 {
        let key = ed25519_dalek::SigningKey::from_bytes(&[i; 32]);
        let d = Device {
            id: format!("gw-{i:04}"),
            public_key: airlock_controller::keys::public_hex(&key),
            hardware: "gw-m4".into(),
            region: "eu-west".into(),
            environment: "production".into(),
            firmware: "2.4.1".into(),
            tags: vec![],
            enrolled_at: 0,
        };
        client::enroll(&admin, &d).await.unwrap();
    }
    let v = client::audit_verify(&admin).await.unwrap();
    let head = v["head"]["seq"].as_u64().unwrap();
    assert!(head >= 5, "{v}");
    let mut waited = 0;
    while witnessed(&witness) < head as usize {
        assert!(waited < 100, "the witness never caught up with entry {head}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    verify(&base, &token, &witness).await.unwrap();

    // Whoever holds the database deletes the newest two entries with their checkpoints.
    let url = format!("sqlite://{}", data.join("airlock.db").display());
    sql(
        &url,
        &[
            "DROP TRIGGER audit_no_delete",
            "DROP TRIGGER checkpoints_no_delete",
            &format!("DELETE FROM audit WHERE seq > {}", head - 2),
            &format!("DELETE FROM audit_checkpoints WHERE seq > {}", head - 2),
        ],
    )
    .await;
    let v = client::audit_verify(&admin).await.unwrap();
    assert_eq!(v["ok"], true, "the trail alone looks clean: {v}");
    match verify(&base, &token, &witness).await {
        Err(CliError::Failed(m)) => assert_eq!(m, "the audit trail has 1 problem"),
        other => panic!("expected the truncation to be caught, got {other:?}"),
    }
    assert_eq!(witnessed(&witness), head as usize, "nothing witnessed after the truncation");

    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
