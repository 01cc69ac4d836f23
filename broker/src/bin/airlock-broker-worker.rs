//! A broker worker process on its own: what the `airlock` binary's hidden subcommand does, for
//! the broker's multi-process tests and benchmark. Started by the main process with
//! [`airlock_broker::WORKER_ENV`] set; exits when the main process goes away.

use std::process::ExitCode;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("airlock-broker-worker: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(airlock_broker::run_worker()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("airlock-broker-worker: {e}");
            ExitCode::FAILURE
        }
    }
}
