//! Execution host tests against real sandboxed processes (need root, namespaces and cgroups).

mod common;

use std::time::Duration;

use common::{TestHost, host_pids_with, invocation, json, wait_until};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_headers_and_logs() {
    let t = TestHost::start().await;
    let f = t.py_function("echo");
    let mut inv = invocation(&f, json!({"action": "echo", "n": 1}));
    inv.client_context = Some(r#"{"custom":{"a":"b"}}"#.into());
    let id = inv.request_id.clone();
    let out = t.host.invoke(inv).await.expect("invoke");
    assert!(!out.function_error, "{}", String::from_utf8_lossy(&out.payload));
    let v = json(&out);
    assert_eq!(v["event"]["n"], 1);
    let h = &v["headers"];
    assert_eq!(h["lambda-runtime-aws-request-id"], id.as_str());
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["lambda-runtime-invoked-function-arn"], f.function_arn.as_str());
    assert_eq!(h["lambda-runtime-client-context"], r#"{"custom":{"a":"b"}}"#);
    assert!(h["lambda-runtime-trace-id"].as_str().is_some());
    let deadline: i64 = h["lambda-runtime-deadline-ms"].as_str().and_then(|s| s.parse().ok()).expect("deadline");
    let now = chrono::Utc::now().timestamp_millis();
    assert!(deadline > now && deadline <= now + 3_000, "deadline {deadline} now {now}");
    assert!(out.init_duration_ms.is_some());
    assert!(out.max_memory_used_mb > 0);

    let tail = out.log_tail.expect("tail");
    assert!(tail.starts_with(&format!("START RequestId: {id} Version: $LATEST\n")), "{tail}");
    assert!(tail.contains("init: bootstrap starting\n"), "{tail}");
    assert!(tail.contains(&format!("echo for {id}\n")), "{tail}");
    assert!(tail.contains("stderr line\n"), "{tail}");
    assert!(tail.contains(&format!("END RequestId: {id}\n")), "{tail}");
    let report = tail.lines().find(|l| l.starts_with("REPORT")).expect("REPORT line");
    assert!(report.contains("\tBilled Duration: ") && report.contains("\tMemory Size: 128 MB\t"), "{report}");
    assert!(report.contains("\tInit Duration: ") && report.ends_with('\t'), "{report}");

    let events = t.host.log_events("123456789012", "echo", 100);
    assert!(events.iter().any(|e| e.message == format!("echo for {id}\n")));
    assert!(events[0].log_stream.contains("/[$LATEST]"));
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_probe() {
    let t = TestHost::start().await;
    let health = t.host.health();
    assert_eq!(health["isolation"]["complete"], true, "{health}");
    let f = t.py_function("probe");
    let out = t.invoke(&f, json!({"action": "probe", "host_file": "/work"})).await;
    let v = json(&out);
    assert!(v["uid"].as_u64().expect("uid") >= 10_000, "{v}");
    assert_eq!(v["uid"], v["gid"]);
    assert_eq!(v["groups"], json!([]), "{v}");
    assert_eq!(v["cwd"], "/var/task");
    assert_ne!(v["shadow"], "readable", "{v}");
    assert_eq!(v["host_file"], false, "{v}");
    assert_eq!(v["task_writable"], false, "{v}");
    assert_eq!(v["cap_eff"], "0000000000000000", "{v}");
    assert_eq!(v["no_new_privs"], "1", "{v}");
    assert_eq!(v["hostname"], "sandbox");
    // Its own user namespace maps the sandbox's ids and nothing else: host root (owner of /usr)
    // shows up as the overflow id.
    let uid = v["uid"].as_u64().expect("uid").to_string();
    assert_eq!(v["uid_map"], json!([uid, uid, "1"]), "{v}");
    assert_eq!(v["gid_map"], json!([uid, uid, "1"]), "{v}");
    assert_eq!(v["usr_owner"], 65534, "{v}");
    assert!(health["isolation"]["available"].as_array().expect("available").contains(&json!("user_ns")), "{health}");
    // Only the runtime's own processes are visible: not the host's, and not the root-owned reaper
    // (pid 1, hidden by hidepid=2 because its command line is the server's).
    let pids: Vec<u64> = v["pids"].as_array().expect("pids").iter().filter_map(|p| p.as_u64()).collect();
    assert!(!pids.is_empty() && pids.len() <= 2 && !pids.contains(&1), "{pids:?}");
    let root: Vec<&str> = v["root_entries"].as_array().expect("root").iter().filter_map(|e| e.as_str()).collect();
    assert!(!root.contains(&"work") && !root.contains(&"root") && root.contains(&"var"), "{root:?}");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_reuse_keeps_state() {
    let t = TestHost::start().await;
    let f = t.py_function("warm");
    let a = t.invoke(&f, json!({"action": "state"})).await;
    let b = t.invoke(&f, json!({"action": "state"})).await;
    let (va, vb) = (json(&a), json(&b));
    assert_eq!(va["pid"], vb["pid"]);
    assert_eq!(va["state"], "x");
    assert_eq!(vb["state"], "xx");
    assert!(a.init_duration_ms.is_some());
    assert!(b.init_duration_ms.is_none());
    assert!(!b.log_tail.expect("tail").contains("Init Duration"));
    // A new revision never reuses the old sandbox.
    let mut f2 = f.clone();
    f2.revision_id = "other".into();
    let c = t.invoke(&f2, json!({"action": "state"})).await;
    assert_eq!(json(&c)["state"], "x");
    assert_eq!(t.host.health()["sandboxes"]["live"], 2);
    t.host.shutdown().await;
    assert_eq!(t.host.health()["sandboxes"]["live"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmp_is_private_per_sandbox() {
    let t = TestHost::start().await;
    let f1 = t.py_function("tmp-one");
    let f2 = t.py_function("tmp-two");
    t.invoke(&f1, json!({"action": "tmp_write", "name": "one-secret"})).await;
    let listed = json(&t.invoke(&f2, json!({"action": "tmp_list"})).await);
    assert_eq!(listed, json!([]));
    let own = json(&t.invoke(&f1, json!({"action": "tmp_list"})).await);
    assert_eq!(own, json!(["one-secret"]));
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_tree_and_next_invoke_works() {
    let t = TestHost::start().await;
    let mut f = t.py_function("sleepy");
    f.timeout_s = 1;
    let marker = format!("{}", 900_000 + rand::random::<u32>() % 90_000);
    let inv = invocation(&f, json!({"action": "sleep", "marker": marker}));
    let id = inv.request_id.clone();
    let started = std::time::Instant::now();
    let out = t.host.invoke(inv).await.expect("invoke");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(950) && took < Duration::from_secs(3), "{took:?}");
    assert!(out.function_error);
    let v = json(&out);
    assert_eq!(v["errorType"], "Sandbox.Timedout");
    let msg = v["errorMessage"].as_str().expect("message");
    assert!(msg.ends_with(&format!(" {id} Task timed out after 1.00 seconds")), "{msg}");
    let tail = out.log_tail.expect("tail");
    assert!(tail.contains("sleeping\n"), "{tail}");
    assert!(tail.contains("Billed Duration: 1000 ms"), "{tail}");
    let report_at = tail.find("REPORT").expect("report");
    assert!(tail[report_at..].contains("Task timed out after 1.00 seconds"), "{tail}");
    assert!(out.duration_ms <= 1000.0);
    // The forked child (sleep <marker>) died with the runtime.
    assert!(wait_until(|| host_pids_with(&marker).is_empty(), Duration::from_secs(3)).await, "child survived");
    let again = t.invoke(&f, json!({"action": "echo"})).await;
    assert!(!again.function_error);
    assert!(again.init_duration_ms.is_some(), "a timed-out sandbox is never reused");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory() {
    let t = TestHost::start().await;
    let mut f = t.py_function("hungry");
    f.timeout_s = 20;
    let inv = invocation(&f, json!({"action": "alloc", "mb": 400}));
    let id = inv.request_id.clone();
    let out = t.host.invoke(inv).await.expect("invoke");
    let v = json(&out);
    assert!(out.function_error);
    assert_eq!(v["errorType"], "Runtime.OutOfMemory", "{v}");
    assert_eq!(v["errorMessage"], format!("RequestId: {id} Error: Runtime exited with error: signal: killed"));
    let tail = out.log_tail.expect("tail");
    assert!(tail.contains("Error: Runtime exited with error: signal: killed"), "{tail}");
    assert!(tail.contains("REPORT RequestId"), "{tail}");
    assert!(out.max_memory_used_mb >= 120, "{}", out.max_memory_used_mb);
    // The host survives and serves the function again.
    let ok = t.invoke(&f, json!({"action": "alloc", "mb": 32})).await;
    assert!(!ok.function_error, "{}", String::from_utf8_lossy(&ok.payload));
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_is_exit_error() {
    let t = TestHost::start().await;
    let f = t.py_function("crasher");
    let inv = invocation(&f, json!({"action": "crash"}));
    let id = inv.request_id.clone();
    let out = t.host.invoke(inv).await.expect("invoke");
    let v = json(&out);
    assert_eq!(v["errorType"], "Runtime.ExitError");
    assert_eq!(v["errorMessage"], format!("RequestId: {id} Error: Runtime exited with error: exit status 3"));
    assert!(out.log_tail.expect("tail").contains("about to crash\n"));
    let next = t.invoke(&f, json!({"action": "echo"})).await;
    assert!(!next.function_error);
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_error_document_is_returned_unchanged() {
    let t = TestHost::start().await;
    let f = t.py_function("failing");
    let out = t.invoke(&f, json!({"action": "fail"})).await;
    assert!(out.function_error);
    assert_eq!(json(&out), json!({"errorMessage": "it failed", "errorType": "ValueError"}));
    // The sandbox survives a handled error.
    let next = t.invoke(&f, json!({"action": "echo"})).await;
    assert!(next.init_duration_ms.is_none());
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_error_fails_invocation_and_discards_sandbox() {
    let t = TestHost::start().await;
    let mut f = t.py_function("initfail");
    f.environment.insert("INIT_FAIL".into(), "1".into());
    let out = t.invoke(&f, json!({})).await;
    assert!(out.function_error);
    assert_eq!(json(&out), json!({"errorMessage": "bad init", "errorType": "Runtime.Custom"}));
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bootstrap_is_invalid_entrypoint() {
    let t = TestHost::start().await;
    let f = t.function("nobootstrap", "provided", &[("handler.sh", b"echo hi", 0o755)]);
    let out = t.invoke(&f, json!({})).await;
    assert!(out.function_error);
    assert_eq!(
        json(&out),
        json!({"errorType": "Runtime.InvalidEntrypoint", "errorMessage": "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]"})
    );
    // Present but not executable counts as missing too.
    let f = t.function("noexec", "provided", &[("bootstrap", b"#!/bin/sh\n", 0o644)]);
    assert_eq!(json(&t.invoke(&f, json!({})).await)["errorType"], "Runtime.InvalidEntrypoint");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_too_large() {
    let t = TestHost::start().await;
    let f = t.py_function("big");
    let out = t.invoke(&f, json!({"action": "big", "size": 7 * 1024 * 1024})).await;
    assert!(out.function_error);
    assert_eq!(
        json(&out),
        json!({"errorType": "Function.ResponseSizeTooLarge", "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes)."})
    );
    let ok = t.invoke(&f, json!({"action": "big", "size": 1024})).await;
    assert!(!ok.function_error);
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_api_rejects_wrong_request_id() {
    let t = TestHost::start().await;
    let f = t.py_function("badid");
    let v = json(&t.invoke(&f, json!({"action": "bad_id"})).await);
    assert_eq!(v["status"], 400);
    assert_eq!(v["body"]["errorType"], "InvalidRequestID");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_and_idle_reaping() {
    let t = TestHost::start_with(|c| {
        c.memory_budget_mb = 256;
        c.idle_timeout = Duration::from_millis(400);
    })
    .await;
    let a = t.py_function("cap-a");
    let b = t.py_function("cap-b");
    let mut c = t.py_function("cap-c");
    c.memory_mb = 256;
    c.timeout_s = 1;
    t.invoke(&a, json!({"action": "echo"})).await;
    t.invoke(&b, json!({"action": "echo"})).await;
    // Both are idle: a 256 MB function evicts them.
    let out = t.invoke(&c, json!({"action": "echo"})).await;
    assert!(!out.function_error);
    // Budget is full with c idle... c is evictable, but a second concurrent c is not possible while busy.
    let h = t.host.clone();
    let c2 = c.clone();
    let busy = tokio::spawn(async move { h.invoke(invocation(&c2, json!({"action": "sleep", "marker": "1"}))).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut d = t.py_function("cap-d");
    d.memory_mb = 256;
    let r = t.host.invoke(invocation(&d, json!({}))).await;
    assert!(matches!(r, Err(lamina_exec_host::ExecError::NoCapacity)), "{r:?}");
    let timed_out = busy.await.expect("join").expect("invoke");
    assert_eq!(json(&timed_out)["errorType"], "Sandbox.Timedout");
    // The budget is free again once the timed-out sandbox is gone.
    assert!(!t.invoke(&d, json!({"action": "echo"})).await.function_error);
    // Idle sandboxes are reaped after idle_timeout.
    assert!(wait_until(|| t.host.health()["sandboxes"]["live"] == 0, Duration::from_secs(3)).await);
    t.host.shutdown().await;
}
