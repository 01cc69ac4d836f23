//! What the runtime asks of the host: is the change under test healthy, and how to reboot.
//!
//! Both are traits so tests and the simulator can answer in process; the binary uses the
//! commands from `agent.toml`.

use airlock_proto::Version;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

/// A boxed health verdict.
pub type Verdict = Pin<Box<dyn Future<Output = bool> + Send + 'static>>;

/// What is under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A firmware image in its test boot.
    Firmware,
    /// A config applied on trial.
    Config,
}

impl Change {
    /// `firmware` or `config` (the `AIRLOCK_CHANGE` the health command sees).
    pub const fn name(self) -> &'static str {
        match self {
            Change::Firmware => "firmware",
            Change::Config => "config",
        }
    }
}

/// Everything a health check may want to look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthContext {
    /// What is under test.
    pub change: Change,
    /// The firmware version running.
    pub firmware_version: Version,
    /// The exported running image (`DATA/firmware.bin`).
    pub firmware: PathBuf,
    /// The exported config (`DATA/config.json`; absent if no config was ever pushed).
    pub config: PathBuf,
    /// Version of the config under test or in effect (0: none).
    pub config_version: u32,
}

/// Decides whether the change under test is healthy: `true` confirms it, `false` reverts it.
pub trait HealthCheck: Send + Sync + 'static {
    /// Runs the check. The runtime keeps serving MQTT while the verdict is pending.
    fn check(&self, cx: HealthContext) -> Verdict;
}

/// Any `Fn(&HealthContext) -> bool` is a health check (for tests and the simulator). It runs on
/// the device loop's task, so it must answer at once; anything slow belongs in a [`Verdict`].
impl<F> HealthCheck for F
where
    F: Fn(&HealthContext) -> bool + Send + Sync + 'static,
{
    fn check(&self, cx: HealthContext) -> Verdict {
        Box::pin(std::future::ready(self(&cx)))
    }
}

/// Runs a command: exit status 0 within the timeout is healthy; a non-zero status, a signal,
/// a timeout (the child is killed) or a command that cannot start is not.
///
/// The command sees `AIRLOCK_CHANGE` (`firmware`/`config`), `AIRLOCK_FIRMWARE` (path),
/// `AIRLOCK_FIRMWARE_VERSION`, `AIRLOCK_CONFIG` (path) and `AIRLOCK_CONFIG_VERSION`.
#[derive(Clone, Debug)]
pub struct CommandHealthCheck {
    argv: Vec<String>,
    timeout: Duration,
}

impl CommandHealthCheck {
    /// `argv[0]` is the program (no shell).
    pub fn new(argv: Vec<String>, timeout: Duration) -> Self {
        CommandHealthCheck { argv, timeout }
    }
}

impl HealthCheck for CommandHealthCheck {
    fn check(&self, cx: HealthContext) -> Verdict {
        let argv = self.argv.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let Some((program, args)) = argv.split_first() else {
                tracing::error!("health check has no command: counted as failed");
                return false;
            };
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args)
                .env("AIRLOCK_CHANGE", cx.change.name())
                .env("AIRLOCK_FIRMWARE", &cx.firmware)
                .env("AIRLOCK_FIRMWARE_VERSION", cx.firmware_version.to_string())
                .env("AIRLOCK_CONFIG", &cx.config)
                .env("AIRLOCK_CONFIG_VERSION", cx.config_version.to_string())
                .stdin(Stdio::null())
                .kill_on_drop(true);
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(%program, error = %e, "health check could not start: counted as failed");
                    return false;
                }
            };
            match tokio::time::timeout(timeout, child.wait()).await {
                Ok(Ok(status)) if status.success() => true,
                Ok(Ok(status)) => {
                    tracing::warn!(%program, %status, "health check failed");
                    false
                }
                Ok(Err(e)) => {
                    tracing::error!(%program, error = %e, "health check could not be awaited: counted as failed");
                    false
                }
                Err(_) => {
                    tracing::warn!(%program, ?timeout, "health check timed out: killed, counted as failed");
                    let _ = child.kill().await;
                    false
                }
            }
        })
    }
}

/// How a reboot the core asks for is carried out.
pub trait RebootHook: Send + 'static {
    /// `true`: the runtime simulates the reboot in process (it feeds the core a fresh boot and
    /// carries on). `false`: the runtime flushes its reports, closes its MQTT session, calls
    /// [`RebootHook::reboot`] and stops; the next start of the agent is the boot.
    fn in_process(&self) -> bool;

    /// Reboots the host (called only when [`RebootHook::in_process`] is `false`).
    fn reboot(&mut self, slot: u8) -> std::io::Result<()>;
}

/// The default: reboots are simulated in process. Right for gateways whose "firmware" is an
/// application bundle the health command (re)starts from `DATA/firmware.bin`, for the
/// simulator, and for tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct InProcessReboot;

impl RebootHook for InProcessReboot {
    fn in_process(&self) -> bool {
        true
    }

    fn reboot(&mut self, _slot: u8) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs a command (`systemctl reboot`) to reboot the host for real.
#[derive(Clone, Debug)]
pub struct CommandReboot {
    argv: Vec<String>,
}

impl CommandReboot {
    /// `argv[0]` is the program (no shell).
    pub fn new(argv: Vec<String>) -> Self {
        CommandReboot { argv }
    }
}

impl RebootHook for CommandReboot {
    fn in_process(&self) -> bool {
        false
    }

    fn reboot(&mut self, slot: u8) -> std::io::Result<()> {
        let Some((program, args)) = self.argv.split_first() else {
            return Err(std::io::Error::other("empty reboot command"));
        };
        tracing::info!(slot, %program, "rebooting the host");
        let status = std::process::Command::new(program).args(args).stdin(Stdio::null()).status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("{program} exited with {status}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> HealthContext {
        HealthContext {
            change: Change::Firmware,
            firmware_version: Version::new(1, 2, 3),
            firmware: PathBuf::from("/nonexistent/firmware.bin"),
            config: PathBuf::from("/nonexistent/config.json"),
            config_version: 0,
        }
    }

    fn sh(script: &str, timeout_ms: u64) -> CommandHealthCheck {
        let argv = ["sh", "-c", script].map(String::from).to_vec();
        CommandHealthCheck::new(argv, Duration::from_millis(timeout_ms))
    }

    #[tokio::test]
    async fn a_command_that_exits_zero_is_healthy_and_sees_what_is_under_test() {
        let check = sh(r#"[ "$AIRLOCK_CHANGE" = firmware ] && [ "$AIRLOCK_FIRMWARE_VERSION" = 1.2.3 ]"#, 5_000);
        assert!(check.check(cx()).await);
    }

    #[tokio::test]
    async fn a_non_zero_exit_a_timeout_or_a_missing_program_is_unhealthy() {
        assert!(!sh("exit 3", 5_000).check(cx()).await);
        let started = std::time::Instant::now();
        assert!(!sh("sleep 10", 200).check(cx()).await);
        assert!(started.elapsed() < Duration::from_secs(5), "the timed-out child was waited for");
        let missing = CommandHealthCheck::new(vec!["/nonexistent/health".into()], Duration::from_secs(1));
        assert!(!missing.check(cx()).await);
    }

    #[tokio::test]
    async fn a_closure_is_a_health_check() {
        let check = |cx: &HealthContext| cx.change == Change::Config;
        assert!(!check.check(cx()).await);
    }
}
