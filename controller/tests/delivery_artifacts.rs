//! Firmware artifacts over HTTP: upload (admin or requester), list, the size limit, roles.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use sha2::Digest as _;
use support::Ctl;

#[tokio::test]
async fn artifacts_are_uploaded_by_requesters_and_admins_and_listed_for_everyone() {
    let ctl = Ctl::start(None, None, 4096).await;
    let image = support::image(3000);
    let (status, a) = ctl.upload("rita", image.clone()).await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["sha256"], hex::encode(sha2::Sha256::digest(&image)));
    assert_eq!(a["size"], 3000);
    // Stored content-addressed, whole.
    let path = ctl.state.data.artifacts().join(a["sha256"].as_str().unwrap());
    assert_eq!(std::fs::read(path).unwrap(), image);
    // The same bytes again are the same artifact.
    let (status, again) = ctl.upload("admin", image.clone()).await;
    assert_eq!((status, &again["sha256"]), (201, &a["sha256"]));
    let (status, other) = ctl.upload("admin", support::image(10)).await;
    assert_eq!(status, 201, "{other}");
    let (status, list) = ctl.call("get", "/api/artifacts", Some("alice"), None).await;
    assert_eq!(status, 200, "{list}");
    let mut listed: Vec<&str> = list.as_array().unwrap().iter().map(|x| x["sha256"].as_str().unwrap()).collect();
    listed.sort_unstable();
    let mut want = vec![a["sha256"].as_str().unwrap(), other["sha256"].as_str().unwrap()];
    want.sort_unstable();
    assert_eq!(listed, want);
    // Each upload is in the audit trail.
    let (_, audit) = ctl.call("get", "/api/audit?limit=20", Some("rita"), None).await;
    let uploads = audit.as_array().unwrap().iter().filter(|e| e["kind"] == "artifact_uploaded").count();
    assert_eq!(uploads, 3);
    ctl.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413_and_leaves_nothing() {
    let ctl = Ctl::start(None, None, 4096).await;
    let (status, body) = ctl.upload("rita", support::image(4097)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        body["error"], "artifact larger than the limit of 4096 bytes (airlock serve --max-artifact-size)",
        "{body}"
    );
    // (A body without Content-Length is counted as it streams in: `artifacts::tests`.)
    let (status, body) = ctl.upload("rita", Vec::new()).await;
    assert_eq!(status, 422, "{body}");
    let (_, list) = ctl.call("get", "/api/artifacts", Some("rita"), None).await;
    assert_eq!(list, serde_json::json!([]));
    let leftovers = std::fs::read_dir(ctl.state.data.artifacts()).unwrap().count();
    assert_eq!(leftovers, 0, "no temporary file is left behind");
    ctl.stop().await;
}

#[tokio::test]
async fn only_admins_and_requesters_upload() {
    let ctl = Ctl::start(None, None, 4096).await;
    let (status, body) = ctl.upload("alice", support::image(10)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("admin or requester"), "{body}");
    let resp = ctl.http.post(format!("{}/api/artifacts", ctl.base)).body(vec![1, 2, 3]).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    ctl.stop().await;
}
