//! `airlock-sim`: rehearse a rollout against a fleet of virtual devices.

use airlock_sim::rehearsal::{run, Plan};
use std::process::ExitCode;

const USAGE: &str = "usage: airlock-sim [--devices N] [--cohort-share 0..1] [--image-kib N] [--unhealthy]";

fn parse() -> Result<Plan, String> {
    let mut plan = Plan { devices: 1000, cohort_share: 0.1, image_size: 64 * 1024, healthy: true };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "--devices" => plan.devices = value("--devices")?.parse().map_err(|e| format!("--devices: {e}"))?,
            "--cohort-share" => {
                plan.cohort_share = value("--cohort-share")?.parse().map_err(|e| format!("--cohort-share: {e}"))?;
                if !(0.0..=1.0).contains(&plan.cohort_share) {
                    return Err("--cohort-share must be between 0 and 1".into());
                }
            }
            "--image-kib" => {
                let kib: usize = value("--image-kib")?.parse().map_err(|e| format!("--image-kib: {e}"))?;
                plan.image_size = kib * 1024;
            }
            "--unhealthy" => plan.healthy = false,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if plan.devices == 0 || plan.image_size == 0 {
        return Err("--devices and --image-kib must be above zero".into());
    }
    Ok(plan)
}

fn main() -> ExitCode {
    let plan = match parse() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "Rehearsal (in-process, no broker yet): {} virtual devices, cohort {:.0}% of the fleet, {} KiB image, two-person approval",
        plan.devices,
        plan.cohort_share * 100.0,
        plan.image_size / 1024
    );
    match run(plan) {
        Ok(o) => {
            println!("  provisioned   {:>7} devices in {:.2?}", plan.devices, o.provision);
            println!("  cohort        {:>7} devices", o.cohort);
            println!("  updated       {:>7} devices (confirmed after their health check)", o.updated);
            for (reason, n) in &o.reverted {
                println!("  reverted      {n:>7} devices ({reason})");
            }
            for (reason, n) in &o.refused {
                println!("  refused       {n:>7} devices ({reason})");
            }
            println!("  delivered to every device in {:.2?}", o.deliver);
            let outsiders_updated = o.updated > o.cohort;
            if outsiders_updated {
                eprintln!("FAILED: devices outside the cohort updated");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rehearsal failed: {e}");
            ExitCode::FAILURE
        }
    }
}
