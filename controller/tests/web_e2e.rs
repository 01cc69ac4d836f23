//! The approval card in a real browser: headless Chromium driven through chromedriver
//! (fantoccini), against a controller on an ephemeral port.
//!
//! Rita (the requester) sees no Approve button on her own proposal and the API refuses her.
//! Alice signs in with her token, finds Approve disabled, types the device count, imports her
//! key file into WebCrypto, opens the diff, approves (signed in the browser): quorum 1 of 2.
//! Carol first offers the wrong key file and a malformed one (both refused by name), then her
//! own, and completes it. The controller verified both browser signatures: the proposal is
//! signed with the release key, and both approvals verify here against the manifest digest.
//!
//! Needs /usr/bin/chromedriver and /usr/bin/chromium (Debian `chromium`, `chromium-driver`);
//! without them it says SKIPPED loudly and returns.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_controller::server::{self, Config};
use airlock_controller::workflow::Clock;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Controller {
    base: String,
    tokens: BTreeMap<String, String>,
    data: PathBuf,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Controller {
    async fn start() -> Controller {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().join("data"),
            policies: airlock_controller::policy::testing::copy_without_calendar_rules(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
                &dir.path().join("policies"),
            )
            .unwrap(),
            ..Config::default()
        };
        let (state, first) = server::start(&config, Clock::system()).await.unwrap();
        let tokens = first.users.iter().map(|(u, t)| (u.name.clone(), t.clone())).collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::run(listener, state, async {
            let _ = rx.await;
        }));
        Controller { base, tokens, data: config.data_dir, http: reqwest::Client::new(), _dir: dir, stop: Some(stop) }
    }

    async fn call(&self, method: &str, path: &str, who: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = if method == "post" { self.http.post(&url) } else { self.http.get(&url) };
        req = req.bearer_auth(&self.tokens[who]);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    fn key_file(&self, who: &str) -> PathBuf {
        self.data.join("keys/users").join(format!("{who}.key"))
    }
}

/// chromedriver on an ephemeral port and one headless Chromium session with a fresh profile.
struct Browser {
    client: Option<Client>,
    driver: std::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        // An ephemeral port for chromedriver: bound, read, released, then handed over.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Its own process group, so a failed test can end chromedriver and the browsers it started.
        let driver = std::process::Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }))
        .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session from {CHROMEDRIVER} on port {port}: {e}"),
            }
        };
        Browser { client: Some(client), driver, _profile: profile }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }
}

impl Browser {
    /// Ends the session (chromedriver quits the browser), then the driver.
    async fn close(mut self) {
        if let Some(c) = self.client.take() {
            c.close().await.unwrap();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.client.is_some() {
            // The test failed before `close`: end the driver's process group, browsers included.
            let group = format!("-{}", self.driver.id());
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &group]).status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Polls `check` (up to 20 s) until it returns `Some`, then returns it; panics with `what`.
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn wait_text(c: &Client, css: &str, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = text(c, css).await;
        if t.contains(wanted) {
            return t;
        }
        if Instant::now() > deadline {
            let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            let page = text(c, "body").await;
            panic!("timed out waiting for {css} to contain {wanted:?}; it says {t:?}; at {url}:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in(c: &Client, base: &str, token: &str, name: &str) {
    c.goto(&format!("{base}/ui/sign-in")).await.unwrap();
    c.find(Locator::Css("#token")).await.unwrap().send_keys(token).await.unwrap();
    c.find(Locator::Css("#sign-in")).await.unwrap().click().await.unwrap();
    wait_text(c, "#who", name).await;
}

async fn sign_out(c: &Client) {
    c.find(Locator::Css("#sign-out")).await.unwrap().click().await.unwrap();
    until("the sign-in page", || async { c.find(Locator::Css("#token")).await.ok().map(|_| ()) }).await;
}

async fn approve_enabled(c: &Client) -> bool {
    c.find(Locator::Css("#approve")).await.unwrap().is_enabled().await.unwrap()
}

/// Opens the card, waits for the self-test and the digest check, and does everything the card
/// demands before Approve, checking it stays disabled until the diff is opened last.
async fn prepare_approval(c: &Client, base: &str, id: i64, key: &Path) {
    c.goto(&format!("{base}/ui/proposals/{id}")).await.unwrap();
    wait_text(c, "#selftest-state", "self-test passed").await;
    wait_text(c, "#digest-state", "matches the server's").await;
    assert!(!approve_enabled(c).await, "Approve is enabled on a fresh card");
    let count = c.find(Locator::Css("#count")).await.unwrap();
    count.send_keys("40").await.unwrap();
    wait_text(c, "#count-state", "does not match").await;
    count.clear().await.unwrap();
    count.send_keys("4").await.unwrap();
    wait_text(c, "#count-state", "matches the card").await;
    c.find(Locator::Css("#key-file")).await.unwrap().send_keys(&key.display().to_string()).await.unwrap();
    wait_text(c, "#key-state", "key imported into this browser").await;
    c.find(Locator::Css("#reason"))
        .await
        .unwrap()
        .send_keys("read the diff; canary first is in the plan")
        .await
        .unwrap();
    let gate = wait_text(c, "#gate", "open the diff").await;
    assert!(!gate.contains("type the number") && !gate.contains("import your key"), "{gate}");
    assert!(!approve_enabled(c).await, "Approve is enabled before the diff was opened");
    c.find(Locator::Css("#diff-summary")).await.unwrap().click().await.unwrap();
    until("Approve to be enabled once the diff is open", || async { approve_enabled(c).await.then_some(()) }).await;
}

fn screenshot_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("web-e2e").join("approval-card.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_sign_in_the_browser_and_the_controller_verifies_both_signatures() {
    for tool in [CHROMEDRIVER, CHROMIUM] {
        if !Path::new(tool).exists() {
            let _ = writeln!(std::io::stderr(), "SKIPPED web e2e: {tool} not found");
            return;
        }
    }
    let started = Instant::now();
    let ctl = Controller::start().await;
    for i in 0..4u8 {
        let key = airlock_controller::keys::public_hex(&ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32]));
        let d = json!({ "id": format!("production-{i:03}"), "public_key": key, "hardware": "gw-m4", "region": "eu",
                        "environment": "production", "firmware": "2.3.0", "tags": [], "enrolled_at": 0 });
        assert_eq!(ctl.call("post", "/api/devices", "admin", Some(d)).await.0, 201);
    }
    let spec = json!({
        "kind": "firmware", "title": "Patch CVE in the TLS stack", "reason": "because the TLS stack leaks keys",
        "cohort": { "environment": ["production"] },
        "firmware": { "version": "2.4.1", "hardware": "gw-m4", "security_counter": 2, "image_sha256": "ab".repeat(32), "image_size": 4096 },
        "security": true
    });
    let (status, card) = ctl.call("post", "/api/proposals", "rita", Some(spec)).await;
    assert_eq!(status, 201, "{card}");
    assert_eq!(card["tier"], "two_person");
    let id = card["id"].as_i64().unwrap();

    let browser = Browser::start().await;
    let c = browser.c();
    let base = ctl.base.as_str();

    // A wrong token is named as such.
    c.goto(&format!("{base}/ui/sign-in")).await.unwrap();
    c.find(Locator::Css("#token")).await.unwrap().send_keys("alk_wrong").await.unwrap();
    c.find(Locator::Css("#sign-in")).await.unwrap().click().await.unwrap();
    wait_text(c, "#sign-in-error", "Unknown token").await;

    // Rita, the requester: no Approve button on her own proposal, and the API refuses her.
    sign_in(c, base, &ctl.tokens["rita"], "rita").await;
    c.goto(&format!("{base}/ui/proposals/{id}")).await.unwrap();
    wait_text(c, "#why-not", "separation of duties").await;
    assert!(c.find(Locator::Css("#approve")).await.is_err(), "the requester is shown an Approve button");
    let digest: [u8; 32] = hex::decode(card["manifest_digest"].as_str().unwrap()).unwrap().try_into().unwrap();
    // Even a valid approver signature (alice's) is refused when rita posts it.
    let alices = airlock_controller::keys::read(&ctl.key_file("alice")).unwrap();
    let forged =
        airlock_proto::build::approve(airlock_proto::Digest::from(digest), airlock_proto::Decision::Approve, &alices);
    let body =
        json!({ "revision": 1, "decision": "Approve", "signature": hex::encode(forged.signature.0), "reason": "mine" });
    let (status, err) = ctl.call("post", &format!("/api/proposals/{id}/decisions"), "rita", Some(body)).await;
    assert_eq!(status, 403, "{err}");
    sign_out(c).await;

    // Alice approves in the browser.
    sign_in(c, base, &ctl.tokens["alice"], "alice").await;
    prepare_approval(c, base, id, &ctl.key_file("alice")).await;
    // What she signs was decoded in her browser, and the decoder refuses damaged bytes by name.
    assert!(text(c, "#decoded").await.contains("firmware 2.4.1 for gw-m4 | image abab"));
    let refusals = c
        .execute(
            "const b = hexToBytes(document.getElementById('card').dataset.manifest, 'm'); const out = [];
             for (const bad of [b.slice(0, b.length - 1), concat(b, [0])]) {
               try { decodeManifest(bad); out.push('decoded'); } catch (e) { out.push(e.message); } }
             return out;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refusals, json!(["the manifest ends inside requester", "1 trailing bytes after the manifest"]));
    c.set_window_size(1280, 3400).await.unwrap();
    let png = c.screenshot().await.unwrap();
    let shot = screenshot_path();
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    std::fs::write(&shot, &png).unwrap();
    let shot = shot.canonicalize().unwrap_or(shot);
    let _ = writeln!(std::io::stderr(), "web e2e: approval card screenshot at {}", shot.display());
    c.set_window_size(1280, 1000).await.unwrap();
    c.find(Locator::Css("#approve")).await.unwrap().click().await.unwrap();
    wait_text(c, "#quorum", "1 of 2 approvals").await;
    assert!(text(c, "#approved-by").await.contains("alice"));
    assert!(c.find(Locator::Css("#approve")).await.is_err(), "alice may not approve twice");
    sign_out(c).await;

    // Carol: the wrong key and a malformed key file are refused by name, then her own key.
    sign_in(c, base, &ctl.tokens["carol"], "carol").await;
    c.goto(&format!("{base}/ui/proposals/{id}")).await.unwrap();
    wait_text(c, "#selftest-state", "self-test passed").await;
    let file = c.find(Locator::Css("#key-file")).await.unwrap();
    file.send_keys(&ctl.key_file("alice").display().to_string()).await.unwrap();
    wait_text(c, "#key-state", "holds a different key").await;
    let scratch = tempfile::tempdir().unwrap();
    let bad = scratch.path().join("bad.key");
    std::fs::write(&bad, "airlock-ed25519-seed-v1 1234\n").unwrap();
    file.send_keys(&bad.display().to_string()).await.unwrap();
    wait_text(c, "#key-state", "malformed key file").await;
    prepare_approval(c, base, id, &ctl.key_file("carol")).await;
    c.find(Locator::Css("#approve")).await.unwrap().click().await.unwrap();
    wait_text(c, "#state", "signed").await;
    wait_text(c, "#quorum", "2 of 2 approvals").await;
    wait_text(c, "#release-signature", "Signed with the release key").await;

    // The controller verified both signatures and signed; they verify here too.
    let (_, after) = ctl.call("get", &format!("/api/proposals/{id}"), "rita", None).await;
    assert_eq!(after["state"], "signed", "{after}");
    assert!(after["release_signature"].as_str().is_some_and(|s| s.len() == 128));
    let approvals = after["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 2);
    for a in approvals {
        assert_eq!(a["decision"], "approve");
        assert_eq!(a["diff_opened"], true, "{a}");
        assert!(a["card_ms"].as_i64().unwrap() > 0, "{a}");
        let key: [u8; 32] = hex::decode(a["public_key"].as_str().unwrap()).unwrap().try_into().unwrap();
        let sig: [u8; 64] = hex::decode(a["signature"].as_str().unwrap()).unwrap().try_into().unwrap();
        let approval = airlock_proto::Approval {
            approver: airlock_proto::PublicKey::from(key),
            decision: airlock_proto::Decision::Approve,
            signature: airlock_proto::Signature::from(sig),
        };
        approval.verify(airlock_proto::Digest::from(digest)).unwrap();
    }
    let (_, metrics) = ctl.call("get", "/api/metrics", "admin", None).await;
    assert_eq!(metrics["diff_opened_rate"], 1.0, "{metrics}");
    assert!(metrics["median_card_secs"].as_f64().unwrap() > 0.0, "{metrics}");
    let (_, verify) = ctl.call("get", "/api/audit/verify", "admin", None).await;
    assert_eq!(verify["ok"], true, "{verify}");

    // The dashboard charts what just happened.
    c.goto(&format!("{base}/ui/dashboard")).await.unwrap();
    wait_text(c, "#diff-opened-rate", "100.0%").await;
    assert!(c.find(Locator::Css("#chart-by-requester svg")).await.is_ok());
    c.set_window_size(1280, 1400).await.unwrap();
    let dashboard = shot.with_file_name("dashboard.png");
    std::fs::write(&dashboard, c.screenshot().await.unwrap()).unwrap();
    let _ = writeln!(std::io::stderr(), "web e2e: dashboard screenshot at {}", dashboard.display());
    c.set_window_size(1280, 1000).await.unwrap();

    // A safer alternative is an edit in one click, and a rejection needs only the key and a reason.
    let spec = json!({
        "kind": "firmware", "title": "Faster boot", "reason": "because boot takes too long",
        "cohort": { "environment": ["production"] },
        "firmware": { "version": "2.5.0", "hardware": "gw-m4", "security_counter": 2, "image_sha256": "cd".repeat(32), "image_size": 8192 }
    });
    let (status, second) = ctl.call("post", "/api/proposals", "rita", Some(spec)).await;
    assert_eq!(status, 201, "{second}");
    let second = second["id"].as_i64().unwrap();
    c.goto(&format!("{base}/ui/proposals/{second}")).await.unwrap();
    wait_text(c, "#device-count", "4").await;
    let half = c.find(Locator::XPath("//button[contains(., 'Half the cohort')]")).await.unwrap();
    half.click().await.unwrap();
    wait_text(c, ".crumbs", "revision 2").await;
    assert_eq!(text(c, "#device-count").await, "2", "half of the four devices");
    // Carol may edit but is in no pool this single-approver request is routed to.
    wait_text(c, "#why-not", "you are in none of those pools").await;
    sign_out(c).await;
    sign_in(c, base, &ctl.tokens["alice"], "alice").await;
    c.goto(&format!("{base}/ui/proposals/{second}")).await.unwrap();
    wait_text(c, "#selftest-state", "self-test passed").await;
    c.find(Locator::Css("#key-file"))
        .await
        .unwrap()
        .send_keys(&ctl.key_file("alice").display().to_string())
        .await
        .unwrap();
    wait_text(c, "#key-state", "key imported").await;
    assert!(!approve_enabled(c).await);
    let reject = c.find(Locator::Css("#reject")).await.unwrap();
    assert!(!reject.is_enabled().await.unwrap(), "Reject is enabled without a reason");
    c.find(Locator::Css("#reason")).await.unwrap().send_keys("boot time is not worth a fleet-wide push").await.unwrap();
    until("Reject to be enabled", || async { reject.is_enabled().await.unwrap().then_some(()) }).await;
    reject.click().await.unwrap();
    wait_text(c, "#state", "rejected").await;
    let (_, rejected) = ctl.call("get", &format!("/api/proposals/{second}"), "rita", None).await;
    assert_eq!((rejected["state"].as_str(), rejected["revision"].as_u64()), (Some("rejected"), Some(2)), "{rejected}");

    browser.close().await;
    let _ = writeln!(std::io::stderr(), "web e2e: done in {:.1} s", started.elapsed().as_secs_f64());
}
