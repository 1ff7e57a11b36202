//! Custom runtimes (`provided*`): a hand-written bootstrap speaking the Runtime API, a package
//! without one, and a function built with the official Rust `lambda_runtime` crate
//! (`tests/fixtures/rust-runtime`).

use std::path::PathBuf;

use lamina_tests::zip_of;
use serde_json::json;

use crate::{Fixture, assert_platform_lines, create, invoke};

/// A bootstrap in Python (the host's `/usr/bin/python3` is visible read-only) using only the
/// Runtime API: it echoes the event with what the `/next` headers said.
const BOOTSTRAP: &str = r#"#!/usr/bin/python3
import http.client
import json
import os

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
print("custom runtime starting", flush=True)
while True:
    conn = http.client.HTTPConnection(api)
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    resp = conn.getresponse()
    body = resp.read()
    rid = resp.getheader("Lambda-Runtime-Aws-Request-Id")
    event = json.loads(body) if body else None
    print("custom runtime got", rid, flush=True)
    if isinstance(event, dict) and event.get("fail"):
        path, out = "error", json.dumps({"errorMessage": "custom failure", "errorType": "Custom.Failure", "extra": [1]})
    else:
        path, out = "response", json.dumps({
            "echo": event,
            "request_id": rid,
            "arn": resp.getheader("Lambda-Runtime-Invoked-Function-Arn"),
            "deadline_ms": int(resp.getheader("Lambda-Runtime-Deadline-Ms")),
            "trace": resp.getheader("Lambda-Runtime-Trace-Id"),
            "handler": os.environ.get("_HANDLER"),
            "cwd": os.getcwd(),
        })
    conn = http.client.HTTPConnection(api)
    conn.request("POST", "/2018-06-01/runtime/invocation/%s/%s" % (rid, path), out)
    conn.getresponse().read()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_written_bootstrap_serves_invocations() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    let zip = zip_of(&[("bootstrap", BOOTSTRAP.as_bytes())]);
    create(c, "custom", "provided.al2023", "my.handler", zip).send().await.expect("create");

    let now_ms = chrono::Utc::now().timestamp_millis();
    let first = invoke(c, "custom", &json!({"hello": "world"})).await;
    let got = first.ok();
    assert_eq!(got["echo"], json!({"hello": "world"}));
    assert_eq!(got["request_id"], first.request_id.as_str(), "Lambda-Runtime-Aws-Request-Id = x-amzn-RequestId");
    assert_eq!(got["arn"], fx.arn("custom"));
    assert_eq!(got["handler"], "my.handler");
    assert_eq!(got["cwd"], "/var/task");
    assert!(got["trace"].as_str().is_some_and(|t| t.starts_with("Root=1-")), "{got}");
    let deadline = got["deadline_ms"].as_i64().expect("deadline");
    assert!(deadline > now_ms && deadline <= now_ms + 3_000 + 5_000, "deadline {deadline} vs now {now_ms} + 3 s");
    assert_eq!(first.executed_version.as_deref(), Some("$LATEST"));
    assert!(first.log.contains("custom runtime starting"), "init output is logged:\n{}", first.log);
    assert!(first.log.contains(&format!("custom runtime got {}", first.request_id)), "{}", first.log);
    assert!(assert_platform_lines(&first.log, &first.request_id, 128).contains("Init Duration"));

    // The same process serves the next call; an /error document comes back unchanged.
    let failed = invoke(c, "custom", &json!({"fail": true})).await;
    assert_eq!(
        failed.unhandled(),
        json!({"errorMessage": "custom failure", "errorType": "Custom.Failure", "extra": [1]}),
        "ERR: the runtime's error document is the body"
    );
    assert!(!failed.log.contains("custom runtime starting"), "warm: no second init:\n{}", failed.log);
    assert_eq!(invoke(c, "custom", &json!(3)).await.ok()["echo"], json!(3));
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_without_bootstrap_is_an_invalid_entrypoint() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    let zip = zip_of(&[("main.sh", b"#!/bin/sh\necho never\n".as_slice())]);
    create(c, "headless", "provided.al2023", "whatever", zip).send().await.expect("create accepts it");
    let got = invoke(c, "headless", &json!({})).await;
    let doc = got.unhandled();
    assert_eq!(doc["errorType"], "Runtime.InvalidEntrypoint");
    assert_eq!(doc["errorMessage"], "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]");
    assert!(got.log.contains("Couldn't find valid bootstrap(s)"), "{}", got.log);
    assert_platform_lines(&got.log, &got.request_id, 128);
    fx.stop().await;
}

/// `<target dir>/debug/bootstrap` of the fixture crate, built on demand.
fn rust_runtime_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // <target>/debug/deps/invoke-<hash>
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let binary = profile_dir.join("bootstrap");
    if !binary.is_file() {
        let target_dir = profile_dir.parent().expect("target dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "lamina-fixture-rust-runtime", "--target-dir"])
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p lamina-fixture-rust-runtime failed");
    }
    assert!(binary.is_file(), "{} missing after the build", binary.display());
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_rust_runtime_works() {
    let binary = tokio::task::spawn_blocking(rust_runtime_binary).await.expect("build fixture");
    let bytes = std::fs::read(&binary).expect("read bootstrap");
    let zip = tokio::task::spawn_blocking(move || zip_of(&[("bootstrap", bytes.as_slice())])).await.expect("zip");
    let fx = Fixture::start().await;
    let c = &fx.client;
    create(c, "rusty", "provided.al2023", "bootstrap", zip).send().await.expect("create");

    let first = invoke(c, "rusty", &json!({"hello": "rust"})).await;
    assert_eq!(first.ok(), json!({"echo": {"hello": "rust"}, "request_id": first.request_id}));
    assert_platform_lines(&first.log, &first.request_id, 128);
    let second = invoke(c, "rusty", &json!([1, 2, 3])).await;
    assert_eq!(second.ok(), json!({"echo": [1, 2, 3], "request_id": second.request_id}));
    let failed = invoke(c, "rusty", &json!({"fail": 1})).await;
    let doc = failed.unhandled();
    assert_eq!(doc["errorMessage"], "asked to fail", "{doc}");
    assert!(doc["errorType"].as_str().is_some_and(|t| !t.is_empty()), "{doc}");
    fx.stop().await;
}
