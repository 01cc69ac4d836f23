//! Side-by-side load harness for the embedded broker candidates: rumqttd 0.20 (tuned), rmqtt 0.24
//! (as a library, with auth and ACL hooks) and airlock-broker, at 1k, 10k and 100k connections.
//!
//! ```sh
//! cd bench/brokers && cargo build --release
//! ../../target/release/airlock-broker-bench run --brokers ours,rumqttd,rmqtt --sizes 1000,10000,100000
//! ```
//!
//! Roles of this one binary (the `run` role starts the others as child processes):
//! - `run`: the orchestrator. Measures the machine's lower bounds, then for each broker and size
//!   starts `serve`, then `clients` processes of at most `--per-process` connections each, and
//!   drives the phases: connect, broadcast fan-out (64 × 4 KiB QoS 0 to every device), unicast
//!   (16 × 4 KiB QoS 1 to each device's own topic), request/response (each device publishes one
//!   request, the controller side answers with 4 KiB). Prints one table.
//! - `serve`: one broker and its controller side (`serve.rs`).
//! - `clients`: rumqttc device connections (`clients.rs`).
//! - `worker`: airlock-broker's worker process (multi-process mode past the open-file limit).

mod clients;
mod rmqtt_hooks;
mod run;
mod serve;

use std::time::{SystemTime, UNIX_EPOCH};

/// Device `dev-N` logs in with password `pw-dev-N`.
pub const DEVICE_PASSWORD_PREFIX: &str = "pw-";

pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn num(args: &[String], name: &str, default: u64) -> u64 {
    arg(args, name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let role = args.get(1).map(String::as_str).unwrap_or("");
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("no runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async {
        match role {
            "run" => run::run(&args).await,
            "serve" => {
                serve::run(
                    arg(&args, "--broker").unwrap_or("ours"),
                    num(&args, "--port", 18830) as u16,
                    num(&args, "--addrs", 8) as u8,
                    num(&args, "--devices", 1000),
                )
                .await
            }
            "clients" => {
                clients::run(
                    num(&args, "--port", 18830) as u16,
                    num(&args, "--addrs", 8) as u8,
                    num(&args, "--from", 0),
                    num(&args, "--count", 1000),
                    num(&args, "--bcast", 64) as u32,
                    num(&args, "--unicast", 16) as u32,
                )
                .await
            }
            "worker" => airlock_broker::run_worker().await.map_err(|e| e.to_string()),
            _ => Err("usage: airlock-broker-bench run [--brokers ours,rumqttd,rmqtt] [--sizes 1000,10000,100000] [--addrs 8] [--per-process 16000] [--timeout 60]".into()),
        }
    });
    if let Err(e) = result {
        eprintln!("airlock-broker-bench {role}: {e}");
        std::process::exit(1);
    }
}
