//! Accept errors back off: with this process's descriptors exhausted, pending connections make
//! `accept` fail with EMFILE; the broker must wait between attempts (a handful of errors a
//! second), not spin, and serve again once descriptors are free. Its own test binary: it lowers
//! the whole process's open-file limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use airlock_broker::limits;
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_errors_at_the_open_file_limit_back_off_and_recover() {
    let b = broker(|_| {}).await;
    let port = b.local_addrs()[0].port();
    let before = limits::fd_limit();
    // Connectors in other processes (their sockets are not ours), started before we run out.
    let mut connectors = Vec::new();
    for _ in 0..4 {
        connectors.push(
            std::process::Command::new("bash")
                .args(["-c", &format!("sleep 0.5; exec 3<>/dev/tcp/127.0.0.1/{port}; sleep 4")])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    // Exhaust: lower the soft limit, then fill what is left with /dev/null.
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    limits::set_fd_soft_limit(open + 64).unwrap();
    let mut hogs = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hogs.push(f);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let errors = b.metrics().accept_errors;
    assert!(errors >= 1, "accept failed at the limit");
    assert!(errors <= 20, "backed off, not spinning: {errors} errors in 2 s");
    drop(hogs);
    limits::set_fd_soft_limit(before.soft).unwrap();
    // Descriptors are free again: a real client gets in (the backoff is at most 1 s).
    let (_c, _el, _) = device(b.local_addrs()[0], 1, true).await;
    for mut c in connectors {
        let _ = c.kill();
        let _ = c.wait();
    }
}
