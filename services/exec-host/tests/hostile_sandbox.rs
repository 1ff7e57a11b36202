//! Hostile functions against the sandbox's own resources: `/tmp` filling memory or the disk, work
//! running on while the sandbox is idle, core dumps, host paths in `/proc/self/mountinfo`.
//! Run: `cargo test -p lamina-exec-host --test hostile_sandbox` (needs root, namespaces, cgroups).

mod common;

use std::time::{Duration, Instant};

use common::{TestHost, json};
use lamina_common::FunctionSnapshot;
use serde_json::{Value, json};

/// A `provided` runtime whose events name an action in `action`.
const RUNTIME: &str = r#"#!/usr/bin/python3 -u
import http.client, json, os, resource, subprocess, threading, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
BASE = "/2018-06-01/runtime"
counter = [0]

def call(method, path, body=None):
    c = http.client.HTTPConnection(host, int(port))
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data

def spin():
    while True:
        counter[0] += 1

def handle(ev):
    a = ev["action"]
    if a == "fill_tmp":
        written, error = 0, None
        chunk = b"\x01" * (1024 * 1024)
        try:
            with open("/tmp/fill", "wb") as f:
                while written < ev["mb"]:
                    f.write(chunk)
                    written += 1
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            error = os.strerror(e.errno) if e.errno else str(e)
        st = os.statvfs("/tmp")
        os.unlink("/tmp/fill")
        return {"written_mb": written, "error": error, "tmp_total_mb": st.f_blocks * st.f_frsize // (1024 * 1024)}
    if a == "spin":
        threading.Thread(target=spin, daemon=True).start()
        child = subprocess.Popen(["/bin/sleep", ev["marker"]])
        # Answer only once the child has exec'd: the sandbox is frozen as soon as it answers, and a
        # child frozen before its exec would not show the marker yet.
        for _ in range(500):
            try:
                if ev["marker"].encode() in open(f"/proc/{child.pid}/cmdline", "rb").read():
                    break
            except OSError:
                pass
            time.sleep(0.01)
        return {"count": counter[0]}
    if a == "count":
        return {"count": counter[0]}
    if a == "rate":
        c0, t0 = counter[0], time.monotonic()
        time.sleep(0.5)
        return {"per_s": (counter[0] - c0) / (time.monotonic() - t0)}
    if a == "limits":
        core = [l for l in open("/proc/self/limits") if l.startswith("Max core file size")][0].split()
        shell = subprocess.run(["/bin/sh", "-c", "ulimit -c; ulimit -Hc"], capture_output=True, text=True).stdout.split()
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (1 << 20, 1 << 20))
            raised = True
        except (ValueError, OSError):
            raised = False
        return {"soft": core[4], "hard": core[5], "shell": shell, "raised": raised}
    if a == "mountinfo":
        return {"mountinfo": open("/proc/self/mountinfo").read(), "task": sorted(os.listdir("/var/task")),
                "runtime": sorted(os.listdir("/var/runtime")), "root": sorted(os.listdir("/"))}
    return {"unknown": a}

while True:
    r, data = call("GET", BASE + "/invocation/next")
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    try:
        out = handle(json.loads(data))
        call("POST", BASE + "/invocation/" + rid + "/response", json.dumps(out))
    except Exception as e:
        call("POST", BASE + "/invocation/" + rid + "/error", json.dumps({"errorMessage": str(e), "errorType": type(e).__name__}))
"#;

fn function(t: &TestHost, name: &str, memory_mb: u32, ephemeral_mb: u32) -> FunctionSnapshot {
    let mut f = t.function(name, "provided.al2023", &[("bootstrap", RUNTIME.as_bytes(), 0o755)]);
    f.memory_mb = memory_mb;
    f.ephemeral_storage_mb = ephemeral_mb;
    f.timeout_s = 30;
    f
}

async fn call(t: &TestHost, f: &FunctionSnapshot, event: Value) -> Value {
    let out = t.invoke(f, event).await;
    let v = json(&out);
    assert!(!out.function_error, "function error: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmp_does_not_count_against_memory() {
    let t = TestHost::start().await;
    assert_eq!(t.host.health()["ephemeral_storage_mb"]["backing"], "disk", "{}", t.host.health());
    // 300 MB in /tmp of a 256 MB function: a tmpfs charged to its memory cgroup is OOM-killed.
    let f = function(&t, "tmp300", 256, 512);
    let v = call(&t, &f, json!({"action": "fill_tmp", "mb": 300})).await;
    assert_eq!(v["written_mb"], 300, "{v}");
    assert_eq!(v["error"], Value::Null, "{v}");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmp_has_the_ephemeral_storage_size_and_ends_in_enospc() {
    let t = TestHost::start().await;
    let f = function(&t, "tmp1024", 256, 1024);
    let v = call(&t, &f, json!({"action": "fill_tmp", "mb": 2048})).await;
    let total = v["tmp_total_mb"].as_u64().expect("total");
    // At least the size promised; ext4's tables come out of a slightly larger image.
    assert!((1024..=1075).contains(&total), "df shows {total} MB for EphemeralStorage 1024: {v}");
    assert_eq!(v["error"], "No space left on device", "{v}");
    let written = v["written_mb"].as_u64().expect("written");
    assert!((1024..=1075).contains(&written), "{v}");
    // The spare sandboxes' default size, after a function with another one.
    let d = function(&t, "tmp_default", 128, 0);
    let v = call(&t, &d, json!({"action": "fill_tmp", "mb": 0})).await;
    let total = v["tmp_total_mb"].as_u64().expect("total");
    assert!((512..=540).contains(&total), "default /tmp is {total} MB: {v}");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_storage_beyond_the_host_budget_is_refused() {
    let t = TestHost::start_with(|c| c.ephemeral_storage_budget_mb = 1536).await;
    let a = function(&t, "big_a", 128, 1024);
    let b = function(&t, "big_b", 128, 1024);
    // Busy: `a` sleeps in an invocation while `b` asks for more /tmp than is left.
    let busy = t.host.invoke(common::invocation(&a, json!({"action": "rate"})));
    let refused = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        t.host.invoke(common::invocation(&b, json!({"action": "count"}))).await
    };
    let (busy, refused) = tokio::join!(busy, refused);
    assert!(matches!(refused, Err(lamina_exec_host::ExecError::NoCapacity)), "{refused:?}");
    assert!(!busy.expect("busy invocation").function_error);
    assert_eq!(t.host.health()["ephemeral_storage_mb"]["used"], 1024);
    // Idle, `a` gives its /tmp up for `b`.
    call(&t, &b, json!({"action": "count"})).await;
    assert_eq!(t.host.health()["ephemeral_storage_mb"]["used"], 1024);
    assert_eq!(t.host.health()["sandboxes"]["live"], 1);
    t.host.shutdown().await;
    assert_eq!(t.host.health()["ephemeral_storage_mb"]["used"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sandbox_gets_no_cpu() {
    let t = TestHost::start().await;
    assert_eq!(t.host.health()["freeze_idle"], true, "{}", t.host.health());
    let f = function(&t, "miner", 128, 0);
    let marker = format!("{}.{}", 7_000_000 + std::process::id(), rand_suffix());
    call(&t, &f, json!({"action": "spin", "marker": marker})).await;
    let rate = call(&t, &f, json!({"action": "rate"})).await["per_s"].as_f64().expect("rate");
    assert!(rate > 10_000.0, "the background loop runs during an invocation: {rate}/s");
    let before = call(&t, &f, json!({"action": "count"})).await["count"].as_f64().expect("count");
    let idle = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = call(&t, &f, json!({"action": "count"})).await["count"].as_f64().expect("count");
    let ran_s = (after - before) / rate;
    // Unfrozen the loop runs the whole idle time (1.5 s); frozen only for the moments around it.
    assert!(ran_s < 0.3, "background loop ran {ran_s:.2} s of {:.2} s idle", idle.elapsed().as_secs_f64());
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_sandboxes_are_reaped_and_killed() {
    // Long enough that a loaded machine still sees the marker before the reaper's first chance.
    let t = TestHost::start_with(|c| c.idle_timeout = Duration::from_secs(5)).await;
    let f = function(&t, "reaped", 128, 0);
    let marker = format!("{}.{}", 8_000_000 + std::process::id(), rand_suffix());
    call(&t, &f, json!({"action": "spin", "marker": marker})).await;
    assert!(!common::host_pids_with(&marker).is_empty(), "the marker process runs");
    // Frozen while idle, then reaped by the idle timeout: the kill must reach frozen processes.
    let gone = common::wait_until(|| common::host_pids_with(&marker).is_empty(), Duration::from_secs(30)).await;
    assert!(gone, "a frozen idle sandbox survived its idle timeout");
    // And a frozen sandbox at shutdown.
    let g = function(&t, "at_shutdown", 128, 0);
    let marker2 = format!("{}.{}", 9_000_000 + std::process::id(), rand_suffix());
    call(&t, &g, json!({"action": "spin", "marker": marker2})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(15), t.host.shutdown()).await.expect("shutdown with a frozen sandbox");
    assert!(common::wait_until(|| common::host_pids_with(&marker2).is_empty(), Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_dumps_are_disabled() {
    let t = TestHost::start().await;
    let f = function(&t, "core", 128, 0);
    let v = call(&t, &f, json!({"action": "limits"})).await;
    assert_eq!(v["soft"], "0", "{v}");
    assert_eq!(v["hard"], "0", "{v}");
    assert_eq!(v["shell"], json!(["0", "0"]), "{v}");
    assert_eq!(v["raised"], false, "the runtime raised its core limit: {v}");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mountinfo_shows_no_host_paths() {
    let t = TestHost::start().await;
    let f = function(&t, "mounts", 128, 0);
    let v = call(&t, &f, json!({"action": "mountinfo"})).await;
    let mountinfo = v["mountinfo"].as_str().expect("mountinfo");
    let data_dir = common::data_dir(&t);
    for needle in [data_dir.to_string_lossy().into_owned(), t.dir.path().to_string_lossy().into_owned()] {
        assert!(!mountinfo.contains(&needle), "mountinfo shows {needle}:\n{mountinfo}");
    }
    for needle in ["/code/", "sandboxes", "ephemeral", &f.code_sha256_hex] {
        assert!(!mountinfo.contains(needle), "mountinfo shows {needle}:\n{mountinfo}");
    }
    // The hidden mounts still work, and leave no staging directories behind.
    assert_eq!(v["task"], json!(["bootstrap"]), "{v}");
    assert!(v["runtime"].as_array().is_some_and(|r| !r.is_empty()), "{v}");
    let root: Vec<&str> = v["root"].as_array().expect("root").iter().filter_map(Value::as_str).collect();
    assert!(!root.iter().any(|e| e.starts_with('.')), "staging left in /: {root:?}");
    t.host.shutdown().await;
}

fn rand_suffix() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32 % 1_000_000
}
