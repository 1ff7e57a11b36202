//! `LAMINA_LOG_FORMAT=json`: the service's stderr is JSON lines, and an API request's lines carry
//! its request id (the one the client got as `x-amzn-RequestId`).

use std::process::Stdio;
use std::time::Duration;

use lamina_tests::{lamina_binary, wait_until};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_json_lines_with_the_request_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (stdout, stderr) = (dir.path().join("stdout.log"), dir.path().join("stderr.log"));
    let mut child = tokio::process::Command::new(lamina_binary())
        .arg("serve")
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg("--listen=127.0.0.1:0")
        .arg("--admin-listen=127.0.0.1:0")
        .arg("--s3-listen=127.0.0.1:0")
        .env("LAMINA_ADMIN_TOKEN", "test-admin-token")
        .env("LAMINA_LOG_FORMAT", "json")
        // The frontend's per-request line is at debug.
        .env("RUST_LOG", "info,lamina_frontend=debug")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .kill_on_drop(true)
        .spawn()
        .expect("start lamina serve");
    let addr = wait_until(Duration::from_secs(60), "lamina serve to announce its address", || {
        let out = std::fs::read_to_string(&stdout).unwrap_or_default();
        let addr = out.lines().find_map(|l| l.split_once("is listening on http://").map(|(_, a)| a.trim().to_owned()));
        async move { addr }
    })
    .await;

    // Unsigned: refused, but still a request with an id.
    let resp = reqwest::get(format!("http://{addr}/2015-03-31/functions/")).await.expect("request");
    let status = resp.status().as_u16();
    assert!(resp.status().is_client_error(), "{status}");
    let request_id =
        resp.headers().get("x-amzn-RequestId").and_then(|v| v.to_str().ok()).expect("x-amzn-RequestId").to_owned();
    let line = wait_until(Duration::from_secs(10), "a log line with the request id", || {
        let text = std::fs::read_to_string(&stderr).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| span_field(v, "request_id") == Some(request_id.as_str()));
        async move { found }
    })
    .await;
    assert!(line["level"].is_string() && line["timestamp"].is_string(), "{line}");
    assert_eq!(line["status"], status, "{line}");

    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    }
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exits").expect("status");
    assert!(exit.success(), "lamina serve exited with {exit}");
    let text = std::fs::read_to_string(&stderr).expect("stderr");
    assert!(text.lines().count() >= 2, "start-up and request lines expected:\n{text}");
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["target"].is_string(), "{l}");
    }
}

/// `name` of the event's current span or of any enclosing one.
fn span_field<'a>(line: &'a Value, name: &str) -> Option<&'a str> {
    let spans = line["spans"].as_array().into_iter().flatten();
    std::iter::once(&line["span"]).chain(spans).find_map(|s| s[name].as_str())
}
