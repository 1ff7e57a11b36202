//! The async queue under faults and floods: events a killed server was running run again within
//! seconds of its restart; the crash harness (`lamina-load crash`) loses nothing; one account's
//! flood neither delays another account's events nor takes the whole execution host.

mod crash_harness;
mod crash_redelivery;
mod fairness;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt as _;

/// A binary of this workspace's debug build (`scripts/test.sh` builds them first).
pub fn binary(name: &str) -> PathBuf {
    lamina_tests::lamina_binary().with_file_name(name)
}

/// Lines `<word> <id>` received on a loopback port, with when they arrived.
#[derive(Clone, Default)]
pub struct Sink(Arc<Mutex<Vec<(String, String, Instant)>>>);

impl Sink {
    /// Listens on 127.0.0.1; returns the sink and its port.
    pub async fn start() -> (Self, u16) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the sink");
        let port = listener.local_addr().expect("sink address").port();
        let sink = Self::default();
        let lines = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let lines = lines.clone();
                tokio::spawn(async move {
                    let mut reader = tokio::io::BufReader::new(stream).lines();
                    while let Ok(Some(line)) = reader.next_line().await {
                        if let Some((word, id)) = line.split_once(' ') {
                            lines.0.lock().expect("sink lock").push((word.into(), id.into(), Instant::now()));
                        }
                    }
                });
            }
        });
        (sink, port)
    }

    /// Arrival times of `word` lines for `id`.
    pub fn times(&self, word: &str, id: &str) -> Vec<Instant> {
        self.0.lock().expect("sink lock").iter().filter(|(w, i, _)| w == word && i == id).map(|(_, _, t)| *t).collect()
    }
}

/// A Python function that reports `start <request id>` to the sink on `port`, sleeps
/// `event["sleep"]` seconds, then reports `done <request id>`.
pub fn reporting_function(port: u16) -> Vec<u8> {
    lamina_tests::python_zip(&format!(
        r#"import socket, time

def tell(word, request_id):
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", {port}), timeout=2) as s:
                s.sendall(("%s %s\n" % (word, request_id)).encode())
            return
        except OSError:
            time.sleep(0.05)

def handler(event, context):
    tell("start", context.aws_request_id)
    time.sleep(event.get("sleep", 0))
    tell("done", context.aws_request_id)
"#
    ))
}

/// `lamina serve` as a child process (in its own process group, so SIGKILL takes its sandboxes too).
pub struct ServeProcess {
    child: tokio::process::Child,
    pub endpoint: String,
}

impl ServeProcess {
    /// Starts `lamina serve` on `data_dir` and `port`, sandboxes allowed to reach `sink_port`;
    /// returns once the API answers.
    pub async fn start(data_dir: &Path, port: u16, sink_port: u16) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .expect("open the server log");
        let child = tokio::process::Command::new(lamina_tests::lamina_binary())
            .arg("serve")
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg("--admin-listen=127.0.0.1:0")
            .arg("--s3-listen=127.0.0.1:0")
            .arg(format!("--sandbox-allow-host-ports={sink_port}"))
            .env("LAMINA_ADMIN_TOKEN", "test-admin-token")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("start lamina serve");
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut server = Self { child, endpoint };
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("client");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default();
                panic!("lamina serve exited ({status}):\n{log}");
            }
            if let Ok(r) = client.get(format!("{}/health", server.endpoint)).send().await
                && r.status().is_success()
                && data_dir.join("credentials").exists()
            {
                return server;
            }
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default();
                panic!("lamina serve did not become ready:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL to the server and everything in its process group; reaps it.
    pub async fn kill(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
        }
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }
}

/// An SDK client with the keys `lamina serve` wrote to `data_dir/credentials`.
pub fn client_of(data_dir: &Path, endpoint: &str) -> aws_sdk_lambda::Client {
    let text = std::fs::read_to_string(data_dir.join("credentials")).expect("credentials file");
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.split_once('=').filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim().to_owned()))
            .expect("key in the credentials file")
    };
    let creds = aws_credential_types::Credentials::new(
        get("aws_access_key_id"),
        get("aws_secret_access_key"),
        None,
        None,
        "lamina-tests",
    );
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
        .region(aws_sdk_lambda::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_lambda::Client::from_conf(conf)
}

/// A free loopback port (for a server that must keep its port across restarts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("pick a port").local_addr().expect("address").port()
}
