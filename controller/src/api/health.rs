//! `/healthz` (liveness: the process answers) and `/readyz` (readiness: it can do its work now,
//! the database answers and the MQTT bus is connected and subscribed). A load balancer routes to
//! replicas whose `/readyz` is 200; a supervisor restarts one whose `/healthz` fails.

use crate::server::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::time::Duration;

/// How long each check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness.
pub(super) async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: 200 when the database and the broker (if any) are up, else 503 with a message
/// naming what is down and why.
pub(super) async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = match tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(s.wf.store.pool())).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("database down: {e}")),
        Err(_) => Err(format!("database down: no answer within {} s", CHECK_TIMEOUT.as_secs())),
    };
    let broker = match &s.delivery {
        None => Ok("not configured"),
        Some(d) if d.ready(CHECK_TIMEOUT).await => Ok("ok"),
        Some(d) => Err(format!("broker down: the controller is not connected and subscribed to {}", d.info.url)),
    };
    let down: Vec<&str> =
        [database.as_ref().err(), broker.as_ref().err()].into_iter().flatten().map(String::as_str).collect();
    let body = json!({
        "database": if database.is_ok() { "ok" } else { "down" },
        "broker": broker.as_ref().map_or("down", |b| *b),
    });
    if down.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready", "checks": body })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": format!("not ready: {}", down.join("; ")), "checks": body })),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::mqtt::MqttConfig;
    use crate::server::{self, Config};
    use crate::workflow::Clock;
    use serde_json::Value;

    async fn serve(
        mqtt: Option<MqttConfig>,
    ) -> (String, crate::store::Store, tempfile::TempDir, tokio::sync::oneshot::Sender<()>) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().join("data"),
            policies: crate::policy::testing::copy_without_calendar_rules(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
                &dir.path().join("policies"),
            )
            .unwrap(),
            mqtt,
            ..Config::default()
        };
        let (state, _) = server::start(&config, Clock::system()).await.unwrap();
        let store = state.wf.store.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::run(listener, state, async {
            let _ = rx.await;
        }));
        (base, store, dir, stop)
    }

    async fn get(url: String) -> (u16, Value) {
        let resp = reqwest::get(url).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn readyz_is_503_naming_the_database_when_it_is_gone_while_healthz_stays_ok() {
        let (base, store, _dir, _stop) = serve(Some(MqttConfig::embedded("127.0.0.1:0".parse().unwrap()))).await;
        let (status, body) = get(format!("{base}/readyz")).await;
        assert_eq!((status, body["checks"]["broker"].as_str()), (200, Some("ok")), "{body}");
        store.close().await;
        let (status, body) = get(format!("{base}/readyz")).await;
        assert_eq!(status, 503, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("database down") && !error.contains("broker"), "{body}");
        assert_eq!(reqwest::get(format!("{base}/healthz")).await.unwrap().status().as_u16(), 200);
    }

    #[tokio::test]
    async fn readyz_is_503_naming_the_broker_when_it_cannot_be_reached() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let mut mqtt = MqttConfig::external(&format!("mqtt://{closed}"));
        mqtt.persistent_session = false;
        let (base, _store, _dir, _stop) = serve(Some(mqtt)).await;
        let (status, body) = get(format!("{base}/readyz")).await;
        assert_eq!(status, 503, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("broker down") && error.contains(&closed.to_string()), "{body}");
        assert_eq!(body["checks"]["database"], "ok", "{body}");
        assert_eq!(reqwest::get(format!("{base}/healthz")).await.unwrap().status().as_u16(), 200);
    }

    /// The shipped unit runs `airlock serve` with arguments today's CLI accepts, and raises the
    /// open-file limit (one descriptor per connected device).
    #[test]
    fn the_systemd_unit_runs_airlock_serve_with_accepted_arguments_and_a_file_limit() {
        use clap::Parser as _;
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/airlock-controller.service");
        let unit = std::fs::read_to_string(&path).unwrap();
        let value = |key: &str| unit.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')).map(str::trim);
        let exec = value("ExecStart").expect("ExecStart");
        let mut args: Vec<&str> = exec.split_whitespace().collect();
        assert_eq!(args.first(), Some(&"/usr/local/bin/airlock"));
        args[0] = "airlock";
        let cli = crate::cli::Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{exec}: {e}"));
        let crate::cli::Command::Serve(serve) = cli.command else { panic!("{exec} is not 'airlock serve'") };
        assert_eq!(serve.data, std::path::Path::new("/var/lib/airlock-controller"));
        let nofile: u64 = value("LimitNOFILE").expect("LimitNOFILE").parse().unwrap();
        assert!(nofile >= 100_000, "LimitNOFILE={nofile}");
        assert_eq!(value("KillSignal"), Some("SIGTERM"), "serve drains on SIGTERM");
    }
}
