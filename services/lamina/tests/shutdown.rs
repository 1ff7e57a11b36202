//! SIGTERM to `lamina serve` while an invocation runs: the invocation completes, nothing new starts,
//! and the process exits cleanly.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Sleeps `event["sleep"]` seconds, then answers with the event's `value`.
const SLEEPER: &str = "import time\n\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return {'value': event.get('value')}\n";

const REGION: &str = "us-east-1";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A `lamina serve` child process on its own port and data dir; killed on drop.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    access_key: String,
    secret_key: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_lamina"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--admin-listen", "127.0.0.1:0"])
            .args(["--s3-listen", "127.0.0.1:0"])
            .env("LAMINA_DATA_DIR", dir.path())
            .env_remove("LAMINA_ADMIN_TOKEN")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start lamina serve");
        let mut server = Server { child, port, dir, access_key: String::new(), secret_key: String::new() };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = reqwest::get(format!("{}/health", server.endpoint())).await;
            if health.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "lamina serve did not become healthy:\n{}", server.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let creds = std::fs::read_to_string(server.dir.path().join("credentials")).expect("credentials file");
        let field = |name: &str| {
            creds
                .lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim_start_matches([' ', '=']).trim().to_owned()))
                .expect("credential field")
        };
        server.access_key = field("aws_access_key_id");
        server.secret_key = field("aws_secret_access_key");
        server
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// A SigV4-signed request (host and x-amz-date signed, body hashed) on a fresh connection.
    fn signed(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
        type HmacSha256 = Hmac<Sha256>;
        let mac = |key: &[u8], data: &str| {
            let mut m = HmacSha256::new_from_slice(key).expect("hmac key");
            m.update(data.as_bytes());
            m.finalize().into_bytes().to_vec()
        };
        let now = chrono::Utc::now();
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let date = now.format("%Y%m%d").to_string();
        let host = format!("127.0.0.1:{}", self.port);
        let canonical = format!(
            "{method}\n{path}\n\nhost:{host}\nx-amz-date:{amz_date}\n\nhost;x-amz-date\n{}",
            hex::encode(Sha256::digest(&body))
        );
        let scope = format!("{date}/{REGION}/lambda/aws4_request");
        let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(&canonical)));
        let mut key = mac(format!("AWS4{}", self.secret_key).as_bytes(), &date);
        for part in [REGION, "lambda", "aws4_request"] {
            key = mac(&key, part);
        }
        let signature = hex::encode(mac(&key, &to_sign));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-date, Signature={signature}",
            self.access_key
        );
        // No connection reuse: a request after SIGTERM must open a new connection.
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("http client");
        client
            .request(method, format!("{}{path}", self.endpoint()))
            .header("x-amz-date", amz_date)
            .header("authorization", auth)
            .body(body)
    }

    /// Creates the sleeper function and warms one sandbox, so a later invoke starts at once.
    async fn create_sleeper(&self, name: &str) {
        let health: Value = reqwest::get(format!("{}/health", self.endpoint()))
            .await
            .expect("health")
            .json()
            .await
            .unwrap_or(Value::Null);
        let runtime = health
            .pointer("/execution_host/runtimes")
            .and_then(Value::as_array)
            .and_then(|rs| rs.iter().filter_map(Value::as_str).find(|r| r.starts_with("python3.")).map(str::to_owned))
            .unwrap_or_else(|| "python3.11".into());
        let zip = base64::engine::general_purpose::STANDARD.encode(zip_of("lambda_function.py", SLEEPER));
        let body = json!({
            "FunctionName": name,
            "Runtime": runtime,
            "Role": "arn:aws:iam::123456789012:role/lambda-role",
            "Handler": "lambda_function.handler",
            "Timeout": 30,
            "Code": {"ZipFile": zip},
        });
        let resp = self
            .signed(reqwest::Method::POST, "/2015-03-31/functions", body.to_string().into_bytes())
            .send()
            .await
            .expect("create function");
        let status = resp.status().as_u16();
        assert_eq!(status, 201, "create function: {}", resp.text().await.unwrap_or_default());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, _, body) = self.invoke(name, json!({"sleep": 0, "value": "warm"})).await.expect("warm invoke");
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "function never became invocable: {status} {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Invokes synchronously: (status, X-Amz-Function-Error, body).
    async fn invoke(&self, name: &str, event: Value) -> reqwest::Result<(u16, Option<String>, String)> {
        let path = format!("/2015-03-31/functions/{name}/invocations");
        let resp = self.signed(reqwest::Method::POST, &path, event.to_string().into_bytes()).send().await?;
        let status = resp.status().as_u16();
        let function_error =
            resp.headers().get("x-amz-function-error").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok((status, function_error, resp.text().await?))
    }

    fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success(), "send SIGTERM");
    }

    /// Waits for the process to exit (at most `bound`) and asserts it exited 0.
    async fn assert_exits_cleanly(&mut self, bound: Duration) {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "serve exits cleanly on SIGTERM: {status}\n{}", self.log());
                return;
            }
            assert!(Instant::now() < deadline, "serve did not exit within {bound:?} of SIGTERM:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A zip holding one file.
fn zip_of(name: &str, contents: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
    w.start_file(name, opts).expect("start zip entry");
    w.write_all(contents.as_bytes()).expect("write zip entry");
    w.finish().expect("finish zip").into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_in_flight_across_sigterm_completes() {
    let mut server = Server::start().await;
    server.create_sleeper("sleeper").await;

    // The sandbox is warm, so the function starts within milliseconds of the request.
    let started = Instant::now();
    let slow = server.invoke("sleeper", json!({"sleep": 3, "value": "done"}));
    let signal = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.sigterm();
    };
    let (result, ()) = tokio::join!(slow, signal);
    let (status, function_error, body) = result.expect("the in-flight invoke gets an answer");
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(function_error, None, "the function was not killed: {body}\n{}", server.log());
    assert_eq!(serde_json::from_str::<Value>(&body).ok(), Some(json!({"value": "done"})), "{body}");
    assert!(started.elapsed() >= Duration::from_secs(3), "the function ran its full 3 s");
    server.assert_exits_cleanly(Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_after_sigterm_is_not_run() {
    let mut server = Server::start().await;
    server.create_sleeper("sleeper").await;

    // Keeps the server draining while the late request arrives.
    let slow = server.invoke("sleeper", json!({"sleep": 3, "value": "in-flight"}));
    let late = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        server.sigterm();
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.invoke("sleeper", json!({"sleep": 0, "value": "late"})).await
    };
    let (slow, late) = tokio::join!(slow, late);
    match late {
        Err(err) => assert!(err.is_connect() || err.is_request(), "refused or closed: {err:?}"),
        Ok((status, _, body)) => {
            assert_ne!(status, 200, "a request after SIGTERM must not run: {body}");
            assert!(status == 503 || status == 429, "refused as unavailable: {status} {body}");
        }
    }
    let (status, function_error, body) = slow.expect("the in-flight invoke gets an answer");
    assert_eq!((status, function_error), (200, None), "{body}\n{}", server.log());
    server.assert_exits_cleanly(Duration::from_secs(20)).await;
}
