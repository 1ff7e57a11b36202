//! Session credentials and Lamina's own API endpoints inside a sandbox: the environment holds the
//! invocation's credentials (never the function's own values for them), `AWS_ENDPOINT_URL_S3` and
//! `AWS_ENDPOINT_URL_LAMBDA` lead to the configured endpoints through the per-sandbox proxy, and
//! nothing else of the host opens. A warm sandbox is retired when its credentials would expire
//! too soon.
//! Run: `cargo test -p lamina-exec-host --test credentials` (needs root, nftables).

mod common;

use std::collections::BTreeMap;

use common::{TestHost, invocation, json};
use lamina_common::FunctionSnapshot;
use lamina_common::session::{self, SessionClaims, SessionCredentials};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The host-wide nftables table follows the last host started: one host at a time here.
static NETWORK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BOOTSTRAP: &str = r#"#!/usr/bin/python3 -u
import errno, http.client, json, os, socket, struct
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
BASE = "/2018-06-01/runtime"

def call(method, path, body=None):
    c = http.client.HTTPConnection(host, int(port))
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data

def err(e):
    return errno.errorcode.get(getattr(e, "errno", None) or 0, type(e).__name__)

def get(url, path):
    h, p = url.split("://", 1)[1].rsplit(":", 1)
    try:
        c = http.client.HTTPConnection(h, int(p), timeout=5)
        c.request("GET", path, headers={"x-probe": "1"})
        r = c.getresponse()
        return "%d %s" % (r.status, r.read().decode())
    except OSError as e:
        return err(e)

def connect(h, p):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((h, p))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = s.recv(64)
        return "answered" if data else "closed"
    except OSError as e:
        return err(e)
    finally:
        s.close()

def gateway():
    for line in open("/proc/net/route").read().splitlines()[1:]:
        f = line.split()
        if f[1] == "00000000":
            return socket.inet_ntoa(struct.pack("<I", int(f[2], 16)))

def hold(url, n):
    h, p = url.split("://", 1)[1].rsplit(":", 1)
    held, out = [], {}
    for _ in range(n):
        s = socket.socket()
        s.settimeout(3)
        try:
            s.connect((h, int(p)))
            s.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
            r = "answered" if s.recv(64) else "closed"
        except OSError as e:
            r = err(e)
        out[r] = out.get(r, 0) + 1
        held.append(s)
    for s in held:
        s.close()
    return out

def handle(ev):
    a = ev["action"]
    env = os.environ
    if a == "env":
        return {"env": dict(env)}
    if a == "endpoints":
        out = {"s3": get(env["AWS_ENDPOINT_URL_S3"], "/bucket/key"),
               "lambda": get(env["AWS_ENDPOINT_URL_LAMBDA"], "/2015-03-31/functions/")}
        for name, (h, p) in ev["others"].items():
            out[name] = connect(h, p)
        out["gateway"] = connect(gateway(), ev["gateway_port"])
        return out
    if a == "hold":
        return hold(env["AWS_ENDPOINT_URL_S3"], ev["n"])
    return {"unknown": a}

while True:
    r, data = call("GET", BASE + "/invocation/next")
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    try:
        out = handle(json.loads(data))
        call("POST", BASE + "/invocation/" + rid + "/response", json.dumps(out))
    except Exception as e:
        call("POST", BASE + "/invocation/" + rid + "/error", json.dumps({"errorMessage": repr(e), "errorType": type(e).__name__}))
"#;

/// An HTTP server on the host's loopback answering `<label> <request line>` and keeping the
/// connection open for more requests; returns its port.
async fn echo_server(label: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind echo server");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let body = format!("{label} {}", head.lines().next().unwrap_or_default());
                        let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                        if s.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

/// A listener on the host's loopback that no sandbox may reach.
async fn private_listener() -> u16 {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.expect("bind private listener");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nprivate").await;
        }
    });
    port
}

const KEY: [u8; 32] = [42; 32];

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn credentials(f: &FunctionSnapshot, expires_at: i64) -> SessionCredentials {
    session::mint(
        &KEY,
        &SessionClaims {
            account_id: f.account_id.clone(),
            function_arn: f.function_arn.clone(),
            role: "arn:aws:iam::123456789012:role/r".into(),
            expires_at,
        },
    )
}

async fn run(t: &TestHost, f: &FunctionSnapshot, creds: Option<&SessionCredentials>, event: Value) -> Value {
    let mut inv = invocation(f, event);
    inv.credentials = creds.cloned();
    let out = t.host.invoke(inv).await.expect("invoke");
    assert!(!out.function_error, "{}", String::from_utf8_lossy(&out.payload));
    json(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_get_session_credentials_and_reach_only_the_configured_endpoints() {
    let _serial = NETWORK.lock().await;
    let s3_port = echo_server("s3").await;
    let lambda_port = echo_server("lambda").await;
    let private = private_listener().await;
    let t = TestHost::start_with(|c| {
        c.s3_endpoint = Some(format!("127.0.0.1:{s3_port}"));
        c.lambda_endpoint = Some(format!("localhost:{lambda_port}"));
    })
    .await;
    let mut f = t.function("creds", "provided.al2023", &[("bootstrap", BOOTSTRAP.as_bytes(), 0o755)]);
    // The function's own configuration cannot put keys or endpoints of its choosing there.
    f.environment = BTreeMap::from([
        ("AWS_ACCESS_KEY_ID".to_string(), "AKLMTENANTKEY".to_string()),
        ("AWS_SESSION_TOKEN".to_string(), "tenant-token".to_string()),
        ("AWS_ENDPOINT_URL_S3".to_string(), "http://example.invalid:1".to_string()),
        ("MY_SETTING".to_string(), "kept".to_string()),
    ]);
    f.timeout_s = 30;
    let creds = credentials(&f, now() + 12 * 3600);

    let v = run(&t, &f, Some(&creds), json!({"action": "env"})).await;
    let env = &v["env"];
    assert_eq!(env["AWS_ACCESS_KEY_ID"], creds.access_key_id.as_str());
    assert_eq!(env["AWS_SECRET_ACCESS_KEY"], creds.secret_access_key.as_str());
    assert_eq!(env["AWS_SESSION_TOKEN"], creds.session_token.as_str());
    assert_eq!(env["AWS_ENDPOINT_URL_S3"], "http://127.0.0.1:9002");
    assert_eq!(env["AWS_ENDPOINT_URL_LAMBDA"], "http://127.0.0.1:9000");
    assert_eq!(env["MY_SETTING"], "kept");

    let others = json!({
        "endpoint_port_itself": ["127.0.0.1", s3_port],
        "private_port": ["127.0.0.1", private],
        "neighbour_port": ["127.0.0.1", 9003],
    });
    let v = run(&t, &f, Some(&creds), json!({"action": "endpoints", "others": others, "gateway_port": private})).await;
    assert_eq!(v["s3"], "200 s3 GET /bucket/key HTTP/1.1", "{v}");
    assert_eq!(v["lambda"], "200 lambda GET /2015-03-31/functions/ HTTP/1.1", "{v}");
    for name in ["endpoint_port_itself", "private_port", "neighbour_port", "gateway"] {
        assert_ne!(v[name], "answered", "{name} must stay unreachable: {v}");
    }

    // The endpoints share the proxy's connection cap.
    let v = run(&t, &f, Some(&creds), json!({"action": "hold", "n": 70})).await;
    assert_eq!(v["answered"], 64, "{v}");
    assert_eq!(v.as_object().map(|o| o.values().filter_map(Value::as_u64).sum::<u64>()), Some(70), "{v}");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_sandboxes_are_retired_when_their_credentials_would_expire_too_soon() {
    let _serial = NETWORK.lock().await;
    let t = TestHost::start().await;
    let f = t.function("warm", "provided.al2023", &[("bootstrap", BOOTSTRAP.as_bytes(), 0o755)]);
    // One log stream per sandbox (pids repeat: each sandbox has its own PID namespace).
    let sandbox = |v: &Value| v["env"]["AWS_LAMBDA_LOG_STREAM_NAME"].as_str().expect("log stream").to_owned();
    let key = |v: &Value| v["env"]["AWS_ACCESS_KEY_ID"].as_str().map(str::to_owned);

    // Started without credentials: reused by invocations that bring none.
    let bare = run(&t, &f, None, json!({"action": "env"})).await;
    assert_eq!(key(&bare), None, "no credentials without a session key");
    assert_eq!(sandbox(&run(&t, &f, None, json!({"action": "env"})).await), sandbox(&bare));

    // An invocation that brings credentials needs a sandbox that has them.
    let long = credentials(&f, now() + 12 * 3600);
    let first = run(&t, &f, Some(&long), json!({"action": "env"})).await;
    assert_ne!(sandbox(&first), sandbox(&bare));
    assert_eq!(key(&first), Some(long.access_key_id.clone()));
    // Newer credentials do not displace a sandbox whose own still last.
    let newer = credentials(&f, now() + 12 * 3600 + 60);
    let again = run(&t, &f, Some(&newer), json!({"action": "env"})).await;
    assert_eq!((sandbox(&again), key(&again)), (sandbox(&first), Some(long.access_key_id.clone())));

    // A sandbox whose credentials expire within timeout (3 s) + 15 minutes takes no more work.
    let g = t.function("short", "provided.al2023", &[("bootstrap", BOOTSTRAP.as_bytes(), 0o755)]);
    let short = credentials(&g, now() + 15 * 60);
    let cold = run(&t, &g, Some(&short), json!({"action": "env"})).await;
    let fresh = credentials(&g, now() + 12 * 3600);
    let next = run(&t, &g, Some(&fresh), json!({"action": "env"})).await;
    assert_ne!(sandbox(&next), sandbox(&cold), "the sandbox with expiring credentials was retired");
    assert_eq!(key(&next), Some(fresh.access_key_id.clone()));
    let kept = run(&t, &g, Some(&fresh), json!({"action": "env"})).await;
    assert_eq!(sandbox(&kept), sandbox(&next));
    t.host.shutdown().await;
}
