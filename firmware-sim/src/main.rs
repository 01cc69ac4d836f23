//! `airlock-sim`: rehearse rollouts on a simulated fleet (`run`), run the controller with a
//! simulated fleet attached (`serve`), or measure the fleet at scale (`bench`).

use airlock_controller::cli::serve::{first_run_text, init_logging, shutdown, ServeArgs};
use airlock_sim::bench::fleet::{BenchConfig, BenchResult};
use airlock_sim::controller::{Broker, Controller};
use airlock_sim::fleet::{Fleet, FleetOptions};
use airlock_sim::run::{run, Options, Target};
use airlock_sim::scenario::Scenario;
use airlock_sim::SimError;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// The default fleet of `serve` (its steps are not played).
const DEMO: &str = include_str!("../scenarios/happy-path.toml");

#[derive(Debug, Parser)]
#[command(name = "airlock-sim", version, about = "Rehearse Airlock rollouts on thousands of virtual devices")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Play scenario files; exits non-zero when an expectation fails.
    #[command(
        after_help = "Examples:\n  airlock-sim run firmware-sim/scenarios/happy-path.toml\n  airlock-sim run --devices 300 firmware-sim/scenarios/*.toml\n  airlock-sim run --mqtt-url mqtt://127.0.0.1:1883 --json report.json firmware-sim/scenarios/rogue-publisher.toml\n  airlock-sim run --controller http://127.0.0.1:7700 --data ./airlock-data firmware-sim/scenarios/happy-path.toml"
    )]
    Run {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Fleet size (default: each scenario's `devices`).
        #[arg(long)]
        devices: Option<usize>,
        /// Use this external broker for the in-process controller (default: its embedded one).
        #[arg(long, value_name = "URL", conflicts_with = "controller")]
        mqtt_url: Option<String>,
        /// Use a running controller instead of starting one (needs --data).
        #[arg(long, value_name = "URL", requires = "data")]
        controller: Option<String>,
        /// The running controller's data directory (tokens.txt and approver keys).
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Policy directory of the in-process controller.
        #[arg(long, default_value = "./policies", value_name = "DIR")]
        policies: PathBuf,
        /// Also write the reports as JSON (an array, one per scenario).
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Measure one rollout to a whole fleet, with the controller in its own process.
    #[command(
        after_help = "Examples:\n  airlock-sim bench --devices 1000\n  airlock-sim bench --devices 10000 --mqtt-url mqtt://127.0.0.1:1883\n\nPrints one table row (docs/benchmarks.md has the figures and how they were taken)."
    )]
    Bench {
        /// Fleet size.
        #[arg(long, default_value_t = 1000)]
        devices: usize,
        /// Image size in KiB.
        #[arg(long, default_value_t = 256)]
        image_kib: u32,
        /// Use this external broker (default: the controller's embedded rumqttd).
        #[arg(long, value_name = "URL")]
        mqtt_url: Option<String>,
        /// Policy directory of the controller.
        #[arg(long, default_value = "./policies", value_name = "DIR")]
        policies: PathBuf,
        /// Longest wait for the rollout, seconds.
        #[arg(long, default_value_t = 1200)]
        timeout: u64,
        /// Also write the result as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// The controller alone, exactly as `airlock serve` (the benchmark runs it as a child).
    #[command(hide = true)]
    Controller(ServeArgs),
    /// The controller (as `airlock serve`) with a simulated fleet attached.
    Serve {
        #[command(flatten)]
        serve: ServeArgs,
        /// Simulated devices.
        #[arg(long, default_value_t = 1000)]
        devices: usize,
        /// A scenario whose [[fleet]] and [faults] shape the fleet (default: happy-path's).
        #[arg(long, value_name = "FILE")]
        fleet: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("airlock-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Run { scenarios, devices, mqtt_url, controller, data, policies, json } => {
                run_scenarios(scenarios, devices, mqtt_url, controller, data, policies, json).await
            }
            Command::Serve { serve, devices, fleet } => serve_with_fleet(serve, devices, fleet).await,
            Command::Controller(args) => airlock_controller::cli::serve::run(&args)
                .await
                .map(|()| ExitCode::SUCCESS)
                .map_err(|e| SimError::Controller(e.to_string())),
            Command::Bench { devices, image_kib, mqtt_url, policies, timeout, json } => {
                let cfg = BenchConfig {
                    devices,
                    image_kib,
                    broker: mqtt_url,
                    policies,
                    timeout: std::time::Duration::from_secs(timeout),
                };
                bench(cfg, json).await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("airlock-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_scenarios(
    paths: Vec<PathBuf>,
    devices: Option<usize>,
    mqtt_url: Option<String>,
    controller: Option<String>,
    data: Option<PathBuf>,
    policies: PathBuf,
    json: Option<PathBuf>,
) -> Result<ExitCode, SimError> {
    // The agents' own logs are off: power cuts and bad links are what the simulator injects
    // (RUST_LOG=airlock_agent=warn shows them).
    let logging = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,rumqttd=off,airlock_agent=off"));
    let _ = tracing_subscriber::fmt().with_env_filter(logging).with_writer(std::io::stderr).try_init();
    let scenarios = paths.iter().map(|p| Scenario::load(p)).collect::<Result<Vec<_>, _>>()?;
    let target = match (controller, data) {
        (Some(url), Some(data)) => Target::Remote { url, data },
        _ => Target::InProcess {
            broker: match mqtt_url {
                Some(url) => Broker::External(url),
                None => Broker::Embedded(([127, 0, 0, 1], 0).into()),
            },
            policies,
        },
    };
    let opts = Options { target, devices, progress: true };
    let mut reports = Vec::new();
    let mut failed = false;
    for s in &scenarios {
        let report = run(s, &opts).await?;
        println!("{}", report.table());
        failed |= !report.passed();
        reports.push(report);
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&reports).map_err(|e| SimError::Io(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| SimError::Io(format!("{}: {e}", path.display())))?;
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn serve_with_fleet(args: ServeArgs, devices: usize, fleet: Option<PathBuf>) -> Result<ExitCode, SimError> {
    init_logging();
    let scenario = match &fleet {
        Some(p) => Scenario::load(p)?,
        None => Scenario::parse(DEMO, "happy-path.toml")?,
    };
    let (ctl, first) = Controller::start_with(&args.config(), &args.listen).await?;
    let addr = ctl.addr().parse().map_err(|_| SimError::Io(format!("bad listen address {}", ctl.addr())))?;
    print!("{}", first_run_text(&first, &args.data, addr));
    println!("listening on {}; devices connect to {}", ctl.base, ctl.broker_url);

    // The demo image a newcomer proposes: uploaded now, with a ready proposal file.
    let image = airlock_sim::run::image_bytes("airlock-sim demo 2.0.0", 256 * 1024);
    ctl.upload("rita", image.clone()).await?;
    let proposal = args.data.join("sim-proposal.toml");
    let text = format!(
        "# Written by airlock-sim serve: firmware 2.0.0 for the simulated gw-m4 fleet, in four waves.\n\
         kind = \"firmware\"\ntitle = \"Install firmware 2.0.0 on the simulated gw-m4 gateways\"\n\
         reason = \"because the simulator is there to rehearse on\"\n\
         cohort = {{ hardware = [\"gw-m4\"] }}\nrollback = {{ plan = \"previous\" }}\nsecurity = true\nlifetime = \"1d\"\n\n\
         [firmware]\nversion = \"2.0.0\"\nhardware = \"gw-m4\"\nsecurity_counter = 2\n\
         image_sha256 = \"{}\"\nimage_size = {}\n\n\
         [rollout]\nwaves = [0.01, 0.1, 0.5, 1.0]\nsuccess_threshold = 0.9\nfailure_threshold = 0.05\n\
         device_timeout = \"60s\"\nrate_per_sec = 200\non_breach = \"pause\"\n",
        hex::encode(airlock_sim::sha256(&image)),
        image.len()
    );
    std::fs::write(&proposal, text).map_err(|e| SimError::Io(format!("{}: {e}", proposal.display())))?;

    let agents = tempfile::tempdir().map_err(|e| SimError::Io(e.to_string()))?;
    let opts = FleetOptions {
        devices,
        slot_size: 256 * 1024,
        update_ops: 2 * 64 + 12,
        prefix: "sim".into(),
        // Fresh identities each start: the simulated flash does not outlive the process.
        key_seed: airlock_sim::unix_now(),
        data_dir: agents.path().to_path_buf(),
    };
    println!("enrolling {devices} simulated devices ({}: {})", scenario.name, fleet_summary(&scenario));
    let fleet = Fleet::start(&ctl, &scenario, &opts).await?;
    let server = if ctl.base.ends_with(":7700") { String::new() } else { format!(" --server {}", ctl.base) };
    println!(
        "{} simulated devices running. In another terminal (cargo build --release first; airlock is target/release/airlock):\n  \
         AIRLOCK_TOKEN=$(grep '^rita ' {data}/tokens.txt | cut -d' ' -f2) airlock{server} propose --file {}\n  \
         AIRLOCK_TOKEN=$(grep '^alice ' {data}/tokens.txt | cut -d' ' -f2) airlock{server} approve ID --key {data}/keys/users/alice.key\n  \
         AIRLOCK_TOKEN=$(grep '^carol ' {data}/tokens.txt | cut -d' ' -f2) airlock{server} approve ID --key {data}/keys/users/carol.key\n  \
         curl -s -H \"authorization: Bearer $AIRLOCK_TOKEN\" {}/api/proposals/ID/rollout   # waves filling up\n  \
         or in a browser: {}/ui/ (sign in with a token; approvers import their key file on the card)",
        fleet.devices.len(),
        proposal.display(),
        ctl.base,
        ctl.base,
        data = args.data.display(),
    );
    shutdown().await;
    let _ = fleet.shutdown(&Default::default()).await;
    ctl.stop().await;
    Ok(ExitCode::SUCCESS)
}

async fn bench(cfg: BenchConfig, json: Option<PathBuf>) -> Result<ExitCode, SimError> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let result = airlock_sim::bench::fleet::run(&cfg, |m| bar.set_message(m.to_string())).await;
    bar.finish_and_clear();
    let r = result?;
    println!("{}", BenchResult::header());
    println!("{}", r.row());
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&r).map_err(|e| SimError::Io(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| SimError::Io(format!("{}: {e}", path.display())))?;
    }
    Ok(if r.confirmed == r.devices { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn fleet_summary(s: &Scenario) -> String {
    s.fleet
        .iter()
        .map(|g| format!("{:.0}% {} {} {} {}", g.share * 100.0, g.hardware, g.region, g.environment, g.firmware))
        .collect::<Vec<_>>()
        .join(", ")
}
