//! Hostile functions against the host's shared parts around the sandboxes: the Runtime API
//! server (connection flood, parallel and out-of-state bodies), the log store and the code cache.
//! Run: `cargo test -p lamina-exec-host --test hostile_runtime` (needs root, namespaces, cgroups, nftables).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestHost, data_dir, invocation, json, wait_until};
use lamina_common::FunctionSnapshot;
use serde_json::json;

/// A `provided` runtime whose events name an attack in `action`. Its own calls retry a few
/// times: while it floods the Runtime API, the host closes its connections at once.
const RUNTIME: &str = r#"#!/usr/bin/python3 -u
import http.client, json, os, socket, sys, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
port = int(port)
BASE = "/2018-06-01/runtime"

def call(method, path, body=None):
    for attempt in range(50):
        try:
            c = http.client.HTTPConnection(host, port, timeout=30)
            c.request(method, BASE + path, body=body)
            r = c.getresponse()
            data = r.read()
            c.close()
            return r, data
        except (ConnectionError, http.client.HTTPException, OSError):
            time.sleep(0.1)
    raise RuntimeError("runtime api unreachable")

def alive(socks):
    """Connections the host still holds open (EOF or reset: closed by the host)."""
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1, socket.MSG_PEEK):
                n += 1
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n

def flood(n, hold):
    # Two processes: a sandbox process may hold only 1024 descriptors.
    r, w = os.pipe()
    kids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            socks, failed = [], 0
            for _ in range(n // 2):
                s = socket.socket()
                s.settimeout(1)
                try:
                    s.connect((host, port))
                    socks.append(s)
                except OSError:
                    failed += 1
                    s.close()
            time.sleep(hold)
            os.write(w, (json.dumps({"opened": len(socks), "failed": failed, "alive": alive(socks)}) + "\n").encode())
            os._exit(0)
        kids.append(pid)
    os.close(w)
    for pid in kids:
        os.waitpid(pid, 0)
    lines = os.fdopen(r).read().split("\n")
    out = [json.loads(l) for l in lines if l]
    return {k: sum(o[k] for o in out) for k in ("opened", "failed", "alive")}

def raw_post(path, length, first=b""):
    s = socket.create_connection((host, port), timeout=5)
    head = "POST %s%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (BASE, path, length)
    s.sendall(head.encode() + first)
    return s

def status_of(s, wait):
    s.settimeout(wait)
    try:
        data = s.recv(4096)
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return type(e).__name__
    if not data:
        return "closed"
    return int(data.split(b" ")[1])

def parallel_posts(rid):
    # The holder starts a small result and keeps the host reading it; meanwhile every other
    # post, of a declared 6 MB, must be answered without its body being read.
    holder = raw_post("/invocation/%s/response" % rid, 4096, b"{")
    time.sleep(0.5)
    others = [raw_post("/invocation/%s/response" % rid, 6 * 1024 * 1024) for _ in range(8)]
    inits = [raw_post("/init/error", 6 * 1024 * 1024) for _ in range(8)]
    start = time.time()
    res = {"response": [status_of(s, 3) for s in others], "init_error": [status_of(s, 3) for s in inits]}
    res["seconds"] = time.time() - start
    body = json.dumps(res).encode()
    holder.sendall(body[1:].ljust(4095))
    res["holder"] = status_of(holder, 5)
    return None

def handle(ev, rid):
    a = ev["action"]
    if a == "echo":
        return {"n": ev.get("n")}
    if a == "flood":
        return flood(ev["connections"], ev["hold"])
    if a == "parallel_posts":
        return parallel_posts(rid)
    if a == "print":
        for _ in range(ev["lines"]):
            sys.stdout.write("y" * ev["size"] + "\n")
        sys.stdout.flush()
        return {"printed": ev["lines"]}
    if a == "hold":
        time.sleep(ev["seconds"])
        return {"bootstrap_bytes": len(open("/var/task/bootstrap", "rb").read())}
    return {"unknown": a}

while True:
    r, data = call("GET", "/invocation/next")
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    out = handle(json.loads(data), rid)
    if out is not None:
        call("POST", "/invocation/" + rid + "/response", json.dumps(out))
"#;

fn function(t: &TestHost, name: &str, timeout_s: u32) -> FunctionSnapshot {
    let mut f = t.function(name, "provided.al2023", &[("bootstrap", RUNTIME.as_bytes(), 0o755)]);
    f.timeout_s = timeout_s;
    f
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Sets this process's soft open-file limit, as a default systemd or shell session has it.
fn set_soft_nofile(n: u64) {
    let pid = std::process::id().to_string();
    let st = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={n}:")])
        .status()
        .expect("run prlimit");
    assert!(st.success(), "prlimit failed");
}

fn soft_nofile() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("open files line");
    line.split_whitespace().nth(3).and_then(|v| v.parse().ok()).expect("soft limit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_flood_is_capped_and_other_sandboxes_still_start() {
    // The usual default: a host that never raised it runs out at ~1000 connections.
    set_soft_nofile(1024);
    let t = TestHost::start().await;
    assert!(soft_nofile() > 1024, "the host raises its soft open-file limit at start");
    let flooder = function(&t, "flooder", 15);
    let normal = function(&t, "normal", 10);
    // Warm the flooder, so its flood starts at once when invoked.
    assert!(!t.invoke(&flooder, json!({"action": "echo"})).await.function_error);
    let baseline = open_fds();
    let both = tokio::time::timeout(Duration::from_secs(40), async {
        tokio::join!(
            t.host.invoke(invocation(&flooder, json!({"action": "flood", "connections": 1100, "hold": 5}))),
            async {
                // The flood (1100 loopback connects) takes well under a second; it is then held for 5 s.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let fds = open_fds();
                (t.host.invoke(invocation(&normal, json!({"action": "echo", "n": 7}))).await, fds)
            }
        )
    })
    .await
    .expect("the flood and the cold start end within 40 s");
    let (flood, (normal_out, fds)) = both;
    let normal_out = normal_out.expect("a cold start during the flood works");
    assert_eq!(json(&normal_out)["n"], 7, "{}", String::from_utf8_lossy(&normal_out.payload));
    let flood = flood.expect("flood invocation ends as an outcome");
    let v = json(&flood);
    assert!(!flood.function_error, "{v}");
    assert!(v["opened"].as_u64().unwrap_or(0) + v["failed"].as_u64().unwrap_or(0) == 1100, "{v}");
    eprintln!("flood: {v}; host descriptors {baseline} before, {fds} during");
    let alive = v["alive"].as_u64().expect("alive");
    assert!(alive <= 32, "the host kept {alive} of the flood's connections open: {v}");
    assert!(fds < baseline + 200, "host descriptors during the flood: {fds} (baseline {baseline})");
    // The flooder itself recovers once its connections are gone.
    let again = t.invoke(&flooder, json!({"action": "echo", "n": 1})).await;
    assert_eq!(json(&again)["n"], 1);
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_and_out_of_state_posts_are_refused_unread() {
    let t = TestHost::start().await;
    let f = function(&t, "poster", 20);
    let out = t.invoke(&f, json!({"action": "parallel_posts"})).await;
    let v = json(&out);
    assert!(!out.function_error, "{v}");
    // A post while another body is being read: refused at once, its 6 MB never read.
    for s in v["response"].as_array().expect("response statuses") {
        assert_eq!(s, 403, "{v}");
    }
    // /init/error after init: refused, whatever its size.
    for s in v["init_error"].as_array().expect("init error statuses") {
        assert_eq!(s, 403, "{v}");
    }
    eprintln!("parallel posts: {v}");
    assert!(v["seconds"].as_f64().expect("seconds") < 2.0, "{v}");
    // The sandbox is still usable: the rejected init error did not poison it.
    let again = t.invoke(&f, json!({"action": "echo", "n": 3})).await;
    assert_eq!(json(&again)["n"], 3, "{}", String::from_utf8_lossy(&again.payload));
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_log_lines_are_cut_and_a_flood_stays_within_the_byte_bounds() {
    const PER_FUNCTION: usize = 512 * 1024;
    const PER_ACCOUNT: usize = 2 * 1024 * 1024;
    let t = TestHost::start_with(|c| {
        c.log_bytes_per_function = PER_FUNCTION;
        c.log_bytes_per_account = PER_ACCOUNT;
    })
    .await;
    let long = function(&t, "long-line", 10);
    let out = t.invoke(&long, json!({"action": "print", "lines": 1, "size": 300 * 1024})).await;
    assert!(!out.function_error);
    let events = t.host.log_events("123456789012", "long-line", 1000);
    let line = events.iter().find(|e| e.message.starts_with("yyyy")).expect("the long line is stored");
    assert!(line.message.len() <= 256 * 1024, "stored event of {} bytes", line.message.len());
    assert!(line.message.ends_with("Truncated by Lambda\n"), "{}", &line.message[line.message.len() - 40..]);

    // 6 functions of one account each log ~1 MB (1000 lines of 1 KB): 6 MB offered.
    let mut names = Vec::new();
    for i in 0..6 {
        let name = format!("flood-{i}");
        let f = function(&t, &name, 10);
        let out = t.invoke(&f, json!({"action": "print", "lines": 1000, "size": 1000})).await;
        assert!(!out.function_error, "{}", String::from_utf8_lossy(&out.payload));
        names.push(name);
    }
    let mut account = 0;
    for name in &names {
        let stored: usize = t.host.log_events("123456789012", name, usize::MAX).iter().map(|e| e.message.len()).sum();
        assert!(stored <= PER_FUNCTION, "{name}: {stored} bytes stored");
        account += stored;
    }
    assert!(account <= PER_ACCOUNT, "account: {account} bytes stored");
    // The newest function's output survived: the oldest went first.
    let newest = t.host.log_events("123456789012", "flood-5", 10);
    assert!(newest.iter().any(|e| e.message.starts_with("REPORT")), "{newest:?}");
    t.host.shutdown().await;
}

fn code_dir(t: &TestHost, f: &FunctionSnapshot) -> PathBuf {
    data_dir(t).join("code").join(&f.code_sha256_hex)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updated_and_deleted_code_leaves_the_disk() {
    let t = TestHost::start_with(|c| {
        // The collector runs with the reaper, every idle_timeout / 4 (1 s here).
        c.idle_timeout = Duration::from_secs(4);
        c.unpacked_code_ttl = Duration::from_millis(300);
    })
    .await;
    let v1 = function(&t, "gc", 10);
    assert!(!t.invoke(&v1, json!({"action": "echo"})).await.function_error);
    assert!(code_dir(&t, &v1).is_dir());
    // An update: same function, new revision and package. The old revision's idle sandbox is
    // reaped after the idle timeout, then its package after the TTL.
    let v2 = function(&t, "gc", 10);
    // It runs longer than the TTL: its own directory stays.
    let out = t.invoke(&v2, json!({"action": "hold", "seconds": 1})).await;
    assert_eq!(json(&out)["bootstrap_bytes"], RUNTIME.len(), "{}", String::from_utf8_lossy(&out.payload));
    // Idle for longer than the TTL and a collector round, not the idle timeout: the warm
    // sandbox still finds its code.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = t.invoke(&v2, json!({"action": "hold", "seconds": 0})).await;
    assert_eq!(json(&out)["bootstrap_bytes"], RUNTIME.len(), "{}", String::from_utf8_lossy(&out.payload));
    assert!(out.init_duration_ms.is_none(), "the second invocation was warm");
    assert!(code_dir(&t, &v2).is_dir());
    let gone = |f: &FunctionSnapshot| !code_dir(&t, f).exists();
    assert!(wait_until(|| gone(&v1), Duration::from_secs(10)).await, "the replaced package is still unpacked");
    // Deleted (no longer invoked): its sandbox is reaped, then its package removed.
    assert!(wait_until(|| gone(&v2), Duration::from_secs(12)).await, "the unused package is still unpacked");
    let code = data_dir(&t).join("code");
    assert!(wait_until(|| entries(&code).is_empty(), Duration::from_secs(5)).await, "{:?}", entries(&code));
    // Invoking it again unpacks it again.
    let out = t.invoke(&v2, json!({"action": "echo", "n": 2})).await;
    assert_eq!(json(&out)["n"], 2);
    t.host.shutdown().await;
}
