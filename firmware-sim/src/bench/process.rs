//! CPU time and peak resident memory of a process, from `/proc` (Linux), without unsafe code.
//!
//! A child's figures must be read before it is reaped: once `wait` returns, its `/proc/PID`
//! entry is gone (or, worse, belongs to another process that reused the id). Between its exit
//! and the reaping (a zombie) the CPU times are still there but the memory map is not, so
//! `peak_rss_bytes` reads 0.

use std::io;
use std::sync::OnceLock;

/// What a process has used so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    /// User plus system CPU time, in seconds (all threads).
    pub cpu_secs: f64,
    /// Peak resident set size (`VmHWM`), in bytes; 0 when the kernel no longer has the process's
    /// memory (a zombie) or never had one (a kernel thread).
    pub peak_rss_bytes: u64,
}

/// The usage of process `pid` so far, from `/proc/PID/stat` and `/proc/PID/status`.
pub fn of_pid(pid: u32) -> io::Result<Usage> {
    read(&format!("/proc/{pid}"))
}

/// The usage of this process so far.
pub fn of_self() -> io::Result<Usage> {
    read("/proc/self")
}

fn read(dir: &str) -> io::Result<Usage> {
    let stat = std::fs::read_to_string(format!("{dir}/stat"))?;
    let ticks = cpu_ticks(&stat).ok_or_else(|| bad(format!("{dir}/stat: no utime and stime in {stat:?}")))?;
    let status = std::fs::read_to_string(format!("{dir}/status"))?;
    let peak_rss_bytes = match status.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
        None => 0,
        Some(v) => kib(v).ok_or_else(|| bad(format!("{dir}/status: bad VmHWM {v:?}")))? * 1024,
    };
    Ok(Usage { cpu_secs: ticks as f64 / clock_ticks_per_sec(), peak_rss_bytes })
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line. The command name (field 2) is
/// in parentheses and may itself hold spaces and parentheses, so fields are counted from the
/// last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after) = stat.rsplit_once(')')?;
    // `after` starts at field 3 (state): utime is field 14, stime field 15.
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `   123456 kB` to 123456.
fn kib(v: &str) -> Option<u64> {
    v.trim().strip_suffix("kB")?.trim().parse().ok()
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Clock ticks per second (`getconf CLK_TCK`), asked once; 100 if that fails.
fn clock_ticks_per_sec() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| t.is_finite() && *t > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::hint::black_box;
    use std::time::{Duration, Instant};

    const MIB: u64 = 1024 * 1024;

    /// Current resident set (`VmRSS`) of this process, for comparison.
    fn rss_now() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        kib(status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap()).unwrap() * 1024
    }

    #[test]
    fn self_usage_grows_with_cpu_and_memory() {
        let before = of_self().unwrap();
        assert!(before.cpu_secs >= 0.0 && before.peak_rss_bytes > 0, "{before:?}");
        let rss0 = rss_now();

        // Burn CPU until the kernel has charged at least 50 ms more (5 ticks at 100 Hz).
        let start = Instant::now();
        let mut x = 0u64;
        while of_self().unwrap().cpu_secs < before.cpu_secs + 0.05 && start.elapsed() < Duration::from_secs(10) {
            for i in 0..100_000u64 {
                x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
        }
        black_box(x);

        // Allocate and touch 64 MiB, and read while it is still held.
        let mut big = vec![0u8; 64 * MIB as usize];
        for i in (0..big.len()).step_by(4096) {
            big[i] = 1;
        }
        black_box(&mut big);
        let after = of_self().unwrap();
        drop(big);

        assert!(after.cpu_secs >= before.cpu_secs + 0.05, "{before:?} -> {after:?}");
        assert!(after.peak_rss_bytes >= before.peak_rss_bytes, "{before:?} -> {after:?}");
        assert!(after.peak_rss_bytes >= 64 * MIB, "{after:?}");
        // Other tests run in this process and may free memory meanwhile: 48 of the 64 MiB must show.
        assert!(after.peak_rss_bytes >= rss0 + 48 * MIB, "rss before {rss0}, {before:?} -> {after:?}");
    }

    #[test]
    fn a_child_can_be_read_before_it_is_reaped() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let usage = of_pid(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        let usage = usage.unwrap();
        assert!(usage.cpu_secs >= 0.0 && usage.peak_rss_bytes > 0, "{usage:?}");
    }

    #[test]
    fn a_missing_pid_is_an_error() {
        // Process ids are below pid_max, so pid_max itself never exists.
        let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap();
        let err = of_pid(pid_max).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 100 1000 50";
        assert_eq!(cpu_ticks(stat), Some(10));
        assert_eq!(cpu_ticks("42 (x) S 1"), None);
        assert_eq!(kib("   2048 kB"), Some(2048));
        assert!(clock_ticks_per_sec() > 0.0);
    }
}
