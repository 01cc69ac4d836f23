//! The orchestrator: lower bounds, then every broker × size, then the table.

use crate::{arg, now_ns, num};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// Descriptors one process may hold here (hard limit 20,000, not raisable).
const PROCESS_FD_LIMIT: u64 = 20_000;

struct Proc {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Proc {
    fn spawn(args: &[String]) -> Result<Proc, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        Ok(Proc { child, stdin, lines: BufReader::new(stdout).lines() })
    }

    async fn send(&mut self, line: &str) -> Result<(), String> {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.map_err(|e| e.to_string())
    }

    async fn recv(&mut self, wait: Duration) -> Result<Vec<String>, String> {
        match tokio::time::timeout(wait, self.lines.next_line()).await {
            Ok(Ok(Some(l))) => Ok(l.split_whitespace().map(String::from).collect()),
            Ok(Ok(None)) => Err("the process exited".into()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {wait:?}")),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

/// utime + stime of `pid`, in seconds (100 ticks a second on Linux).
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// Peak resident set (VmHWM) of `pid`, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0.0 };
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

struct Floors {
    loopback_bytes_per_s: f64,
    connects_per_s: f64,
}

/// The machine's lower bounds, measured now: one loopback TCP stream's throughput, and TCP
/// connects (with accept) per second.
async fn floors() -> Result<Floors, String> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let reader = tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else { return 0u64 };
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let mut w = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let chunk = vec![7u8; 64 * 1024];
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        w.write_all(&chunk).await.map_err(|e| e.to_string())?;
    }
    drop(w);
    let total = reader.await.map_err(|e| e.to_string())?;
    let loopback_bytes_per_s = total as f64 / t0.elapsed().as_secs_f64();

    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let acceptor = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    const N: usize = 4000;
    let t0 = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        tasks.spawn(async move {
            let mut held = Vec::new();
            for _ in 0..N / 64 {
                if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
                    let _ = s.set_nodelay(true);
                    held.push(s);
                }
            }
            held.len()
        });
    }
    let mut made = 0;
    while let Some(r) = tasks.join_next().await {
        made += r.unwrap_or(0);
    }
    let connects_per_s = made as f64 / t0.elapsed().as_secs_f64();
    acceptor.abort();
    Ok(Floors { loopback_bytes_per_s, connects_per_s })
}

#[derive(Default)]
struct Row {
    broker: String,
    devices: u64,
    connected: u64,
    connect_s: f64,
    bcast_s: f64,
    bcast_done: u64,
    unicast_s: f64,
    unicast_done: u64,
    resp_s: f64,
    resp_done: u64,
    cpu: [f64; 4],
    rss_mib: f64,
    processes: usize,
    clients_cpu: f64,
    clients_rss_mib: f64,
    note: String,
}

pub async fn run(args: &[String]) -> Result<(), String> {
    let brokers: Vec<String> =
        arg(args, "--brokers").unwrap_or("ours,rumqttd,rmqtt").split(',').map(String::from).collect();
    let sizes: Vec<u64> =
        arg(args, "--sizes").unwrap_or("1000,10000,100000").split(',').filter_map(|s| s.parse().ok()).collect();
    let k = num(args, "--addrs", 8);
    let per_process = num(args, "--per-process", 16_000);
    let timeout = num(args, "--timeout", 60);
    let bcast = num(args, "--bcast", 64);
    let unicast = num(args, "--unicast", 16);
    // Deliveries per second the controller side sends at, from this size on (0: unpaced).
    let rate = num(args, "--rate", 40_000);
    let rate_from = num(args, "--rate-from", 50_000);

    let f = floors().await?;
    eprintln!(
        "lower bounds: loopback TCP {:.0} MB/s (one stream), {:.0} connects/s",
        f.loopback_bytes_per_s / 1e6,
        f.connects_per_s
    );
    let mut rows = Vec::new();
    for &n in &sizes {
        for b in &brokers {
            if b != "ours" && n + 1000 > PROCESS_FD_LIMIT {
                rows.push(Row {
                    broker: b.clone(),
                    devices: n,
                    note: format!("cannot: one process, {PROCESS_FD_LIMIT} descriptors"),
                    ..Row::default()
                });
                continue;
            }
            eprintln!("== {b}, {n} devices");
            let pace = if n >= rate_from { rate } else { 0 };
            let row = match one(b, n, k, per_process, timeout, bcast, unicast, pace).await {
                Ok(r) => r,
                Err(e) => Row { broker: b.clone(), devices: n, note: format!("failed: {e}"), ..Row::default() },
            };
            print_row(&row, &f, bcast, unicast);
            rows.push(row);
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }
    println!();
    println!(
        "lower bounds (same run): loopback TCP {:.0} MB/s one stream; {:.0} TCP connects/s",
        f.loopback_bytes_per_s / 1e6,
        f.connects_per_s
    );
    println!("| broker | devices | connected | connect s (floor) | fan-out {bcast}×4 KiB s, devices complete (floor) | unicast {unicast}×4 KiB s, complete (floor) | req/resp s, complete | broker CPU s: connect / fan-out / unicast / req | broker peak RSS MiB | processes | clients CPU s / peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        print_row(r, &f, bcast, unicast);
    }
    Ok(())
}

fn print_row(r: &Row, f: &Floors, bcast: u64, unicast: u64) {
    if !r.note.is_empty() && r.connected == 0 {
        println!("| {} | {} | — | {} | | | | | | | |", r.broker, r.devices, r.note);
        return;
    }
    let n = r.devices as f64;
    let fan_floor = n * bcast as f64 * 4096.0 / f.loopback_bytes_per_s;
    let uni_floor = n * unicast as f64 * 4096.0 / f.loopback_bytes_per_s;
    println!(
        "| {} | {} | {} | {:.1} ({:.1}) | {:.1}, {} ({:.1}) | {:.1}, {} ({:.1}) | {:.1}, {} | {:.1} / {:.1} / {:.1} / {:.1} | {:.0} | {} | {:.0} / {:.0} |{}",
        r.broker,
        r.devices,
        r.connected,
        r.connect_s,
        n / f.connects_per_s,
        r.bcast_s,
        r.bcast_done,
        fan_floor,
        r.unicast_s,
        r.unicast_done,
        uni_floor,
        r.resp_s,
        r.resp_done,
        r.cpu[0],
        r.cpu[1],
        r.cpu[2],
        r.cpu[3],
        r.rss_mib,
        r.processes,
        r.clients_cpu,
        r.clients_rss_mib,
        if r.note.is_empty() { String::new() } else { format!(" {}", r.note) }
    );
}

fn field(words: &[String], i: usize) -> u64 {
    words.get(i).and_then(|w| w.parse().ok()).unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
async fn one(
    broker: &str,
    n: u64,
    k: u64,
    per_process: u64,
    timeout: u64,
    bcast: u64,
    unicast: u64,
    pace: u64,
) -> Result<Row, String> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        l.local_addr().map_err(|e| e.to_string())?.port()
    };
    let s = |v: &str| v.to_string();
    let mut serve = Proc::spawn(&[
        s("serve"),
        s("--broker"),
        s(broker),
        s("--port"),
        port.to_string(),
        s("--addrs"),
        k.to_string(),
        s("--devices"),
        n.to_string(),
    ])?;
    let ready = serve.recv(Duration::from_secs(60)).await?;
    let mut pids: Vec<u32> = vec![serve.pid()];
    pids.extend(ready.iter().skip(1).filter_map(|p| p.parse::<u32>().ok()));
    let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_secs(*p)).sum::<f64>();
    let mut row = Row { broker: broker.into(), devices: n, processes: pids.len(), ..Row::default() };
    if pace > 0 {
        row.note = format!("paced at {pace} deliveries/s");
    }
    let c0 = cpu(&pids);

    let procs = n.div_ceil(per_process);
    let mut clients = Vec::new();
    for p in 0..procs {
        let from = p * n / procs;
        let count = (p + 1) * n / procs - from;
        clients.push(Proc::spawn(&[
            s("clients"),
            s("--port"),
            port.to_string(),
            s("--addrs"),
            k.to_string(),
            s("--from"),
            from.to_string(),
            s("--count"),
            count.to_string(),
            s("--bcast"),
            bcast.to_string(),
            s("--unicast"),
            unicast.to_string(),
        ])?);
    }
    let (mut t_first, mut t_last) = (u64::MAX, 0);
    for c in &mut clients {
        let w = c.recv(Duration::from_secs(600)).await?;
        t_first = t_first.min(field(&w, 1));
        t_last = t_last.max(field(&w, 2));
        row.connected += field(&w, 3);
    }
    row.connect_s = secs(t_last.saturating_sub(t_first));
    let c1 = cpu(&pids);
    row.cpu[0] = c1 - c0;
    eprintln!("   connected {} of {n} in {:.1} s", row.connected, row.connect_s);

    // Fan-out.
    serve.send(&format!("bcast {bcast} 4096 {pace}")).await?;
    let sent = serve.recv(Duration::from_secs(600)).await?;
    let t0 = field(&sent, 1);
    let (done, last) = wait_all(&mut clients, "bcast", timeout).await?;
    row.bcast_done = done;
    row.bcast_s = secs(last.saturating_sub(t0));
    let c2 = cpu(&pids);
    row.cpu[1] = c2 - c1;
    eprintln!("   fan-out: {done} devices complete, {:.2} s", row.bcast_s);

    // Unicast.
    serve.send(&format!("unicast {unicast} 4096 {pace}")).await?;
    let sent = serve.recv(Duration::from_secs(600)).await?;
    let t0 = field(&sent, 1);
    let (done, last) = wait_all(&mut clients, "unicast", timeout).await?;
    row.unicast_done = done;
    row.unicast_s = secs(last.saturating_sub(t0));
    let c3 = cpu(&pids);
    row.cpu[2] = c3 - c2;
    eprintln!("   unicast: {done} devices complete, {:.2} s", row.unicast_s);

    // Request/response.
    let t0 = now_ns();
    for c in &mut clients {
        c.send("request").await?;
    }
    for c in &mut clients {
        c.recv(Duration::from_secs(600)).await?;
    }
    let (done, last) = wait_all(&mut clients, "resp", timeout).await?;
    row.resp_done = done;
    row.resp_s = secs(last.saturating_sub(t0));
    row.cpu[3] = cpu(&pids) - c3;
    eprintln!("   req/resp: {done} devices answered, {:.2} s", row.resp_s);

    serve.send("stats").await?;
    if let Ok(stats) = serve.recv(Duration::from_secs(10)).await {
        eprintln!("   {}", stats.join(" "));
    }
    row.rss_mib = pids.iter().map(|p| peak_rss_mib(*p)).sum();
    row.clients_cpu = clients.iter().map(|c| cpu_secs(c.pid())).sum();
    row.clients_rss_mib = clients.iter().map(|c| peak_rss_mib(c.pid())).sum();
    for c in &mut clients {
        let _ = c.send("quit").await;
    }
    for mut c in clients {
        let _ = tokio::time::timeout(Duration::from_secs(30), c.child.wait()).await;
        let _ = c.child.start_kill();
    }
    let _ = serve.send("quit").await;
    let _ = tokio::time::timeout(Duration::from_secs(10), serve.child.wait()).await;
    let _ = serve.child.start_kill();
    Ok(row)
}

/// Asks every client process to wait for `what`; returns devices complete and the last time.
async fn wait_all(clients: &mut [Proc], what: &str, timeout: u64) -> Result<(u64, u64), String> {
    for c in clients.iter_mut() {
        c.send(&format!("wait {what} {timeout}")).await?;
    }
    let (mut done, mut last) = (0, 0);
    for c in clients.iter_mut() {
        let w = c.recv(Duration::from_secs(timeout + 60)).await?;
        done += field(&w, 1);
        last = last.max(field(&w, 2));
    }
    Ok((done, last))
}
