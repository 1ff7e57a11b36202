//! Helpers for the execution-host tests: zipped packages, a host in a temp dir, invocations.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use lamina_common::FunctionSnapshot;
use lamina_exec_host::{Config, ExecHost, Invocation, InvokeOutcome};
use tokio_util::sync::CancellationToken;

/// A `provided` bootstrap in Python speaking the Runtime API with http.client; the event's
/// `action` selects a behaviour.
pub const PY_BOOTSTRAP: &str = r#"#!/usr/bin/python3 -u
import http.client, json, os, sys, subprocess, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
BASE = "/2018-06-01/runtime"

def call(method, path, body=None, headers=None):
    c = http.client.HTTPConnection(host, int(port))
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data

print("init: bootstrap starting")
if os.environ.get("INIT_FAIL"):
    call("POST", BASE + "/init/error", json.dumps({"errorMessage": "bad init", "errorType": "Runtime.Custom"}))
    sys.exit(1)

def handle(ev, rid, hdrs):
    a = ev.get("action", "echo")
    if a == "echo":
        print("echo for", rid)
        sys.stderr.write("stderr line\n")
        return {"event": ev, "pid": os.getpid(), "headers": hdrs}
    if a == "env":
        return dict(os.environ)
    if a == "state":
        with open("/tmp/state", "a") as f:
            f.write("x")
        return {"pid": os.getpid(), "state": open("/tmp/state").read()}
    if a == "sleep":
        subprocess.Popen(["/bin/sleep", ev["marker"]])
        print("sleeping")
        time.sleep(1000)
    if a == "alloc":
        blocks = []
        for _ in range(ev["mb"] // 16):
            blocks.append(b"\x01" * (16 * 1024 * 1024))
        return {"allocated": len(blocks) * 16}
    if a == "crash":
        print("about to crash")
        os._exit(3)
    if a == "big":
        return "x" * ev["size"]
    if a == "fail":
        raise ValueError("it failed")
    if a == "bad_id":
        r, data = call("POST", BASE + "/invocation/not-the-id/response", "{}")
        return {"status": r.status, "body": json.loads(data)}
    if a == "probe":
        out = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "cwd": os.getcwd()}
        try:
            open("/etc/shadow").read(); out["shadow"] = "readable"
        except Exception as e:
            out["shadow"] = type(e).__name__
        out["root_entries"] = sorted(os.listdir("/"))
        out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        status = open("/proc/self/status").read()
        out["cap_eff"] = [l.split()[1] for l in status.splitlines() if l.startswith("CapEff")][0]
        out["no_new_privs"] = [l.split()[1] for l in status.splitlines() if l.startswith("NoNewPrivs")][0]
        out["host_file"] = os.path.exists(ev["host_file"])
        try:
            open("/var/task/newfile", "w"); out["task_writable"] = True
        except Exception:
            out["task_writable"] = False
        out["hostname"] = os.uname().nodename
        out["uid_map"] = open("/proc/self/uid_map").read().split()
        out["gid_map"] = open("/proc/self/gid_map").read().split()
        out["usr_owner"] = os.stat("/usr").st_uid
        return out
    if a == "tmp_write":
        open("/tmp/" + ev["name"], "w").write("secret")
        return {"ok": True}
    if a == "tmp_list":
        return sorted(os.listdir("/tmp"))
    return {"unknown": a}

while True:
    r, data = call("GET", BASE + "/invocation/next")
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    hdrs = {k.lower(): v for k, v in r.getheaders() if k.lower().startswith("lambda-runtime") or k.lower() == "content-type"}
    try:
        out = handle(json.loads(data), rid, hdrs)
        call("POST", BASE + "/invocation/" + rid + "/response", json.dumps(out))
    except Exception as e:
        call("POST", BASE + "/invocation/" + rid + "/error", json.dumps({"errorMessage": str(e), "errorType": type(e).__name__}),
             {"Lambda-Runtime-Function-Error-Type": type(e).__name__})
"#;

pub struct TestHost {
    pub host: ExecHost,
    pub dir: tempfile::TempDir,
    pub token: CancellationToken,
}

impl TestHost {
    pub async fn start() -> TestHost {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestHost {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config { data_dir: dir.path().join("data"), cpu_quota: false, ..Config::default() };
        f(&mut config);
        let token = CancellationToken::new();
        let blobs = lamina_code_storage::CodeStorage::open(dir.path().join("blobs"), Default::default())
            .expect("open blob dir");
        let host = ExecHost::start(config, blobs.into(), token.clone()).await.expect("start exec host");
        TestHost { host, dir, token }
    }

    /// Where the package of `f` is stored (a test may write any zip there, bypassing validation).
    pub fn blob_path(&self, f: &FunctionSnapshot) -> PathBuf {
        self.dir.path().join("blobs").join(&f.code_sha256_hex)
    }

    /// Writes a zip with the given (name, contents, mode) entries and returns a snapshot for it.
    pub fn function(&self, name: &str, runtime: &str, files: &[(&str, &[u8], u32)]) -> FunctionSnapshot {
        // A fresh digest per function: the host caches unpacked code by it.
        let sha = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        write_zip(&self.dir.path().join("blobs").join(&sha), files);
        FunctionSnapshot {
            account_id: "123456789012".into(),
            function_name: name.into(),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
            version: "$LATEST".into(),
            revision_id: uuid::Uuid::new_v4().to_string(),
            runtime: runtime.into(),
            handler: "function.handler".into(),
            memory_mb: 128,
            timeout_s: 3,
            environment: BTreeMap::new(),
            code_sha256_hex: sha,
            ephemeral_storage_mb: 0,
        }
    }

    /// A `provided.al2023` function using [`PY_BOOTSTRAP`].
    pub fn py_function(&self, name: &str) -> FunctionSnapshot {
        self.function(name, "provided.al2023", &[("bootstrap", PY_BOOTSTRAP.as_bytes(), 0o755)])
    }

    pub async fn invoke(&self, f: &FunctionSnapshot, event: serde_json::Value) -> InvokeOutcome {
        self.host.invoke(invocation(f, event)).await.expect("invoke")
    }
}

pub fn invocation(f: &FunctionSnapshot, event: serde_json::Value) -> Invocation {
    Invocation {
        function: f.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
        invoked_arn: f.function_arn.clone(),
        payload: Bytes::from(event.to_string()),
        client_context: None,
        cognito_identity: None,
        trace_id: "Root=1-00000000-000000000000000000000000".into(),
        tail_log: true,
        account_share_percent: None,
        credentials: None,
    }
}

pub fn write_zip(path: &Path, files: &[(&str, &[u8], u32)]) {
    let file = std::fs::File::create(path).expect("create zip");
    let mut zip = zip::ZipWriter::new(file);
    for (name, contents, mode) in files {
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
        zip.start_file(*name, opts).expect("start zip entry");
        zip.write_all(contents).expect("write zip entry");
    }
    zip.finish().expect("finish zip");
}

pub fn json(outcome: &InvokeOutcome) -> serde_json::Value {
    serde_json::from_slice(&outcome.payload)
        .unwrap_or_else(|e| panic!("payload is not JSON ({e}): {}", String::from_utf8_lossy(&outcome.payload)))
}

/// Host pids whose command line contains `needle`.
pub fn host_pids_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

pub async fn wait_until(mut cond: impl FnMut() -> bool, timeout: Duration) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

pub fn data_dir(t: &TestHost) -> PathBuf {
    t.dir.path().join("data")
}
