//! `airlock`: the controller's command line (server and client). Everything is in
//! [`airlock_controller::cli`]; this only parses, runs and turns the outcome into an exit code
//! (0 ok, 1 failure, 2 usage).

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Usage errors exit 2 and --help exits 0, both inside clap.
    let cli = airlock_controller::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(airlock_controller::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.message());
            ExitCode::from(e.exit_code())
        }
    }
}
