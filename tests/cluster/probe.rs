//! A TCP server in the test process that functions report to through an allow-listed host port:
//! sandboxes see nothing of each other or of the host, so this is how a test learns what ran,
//! when, and how much of it at once.
//!
//! A function connects to `127.0.0.1:<port>` (its own loopback: the execution host redirects the
//! allow-listed port to the host's loopback, see docs/security.md), sends `start <tag>`, works,
//! sends `end <tag>` and returns. Every line is acknowledged with `ok`, so a run is counted only
//! between the moment it is inside the handler and the moment it is about to return: strictly
//! inside the time its concurrency slot is held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// What the functions reported.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Runs between `start` and `end` (or a dropped connection) now.
    pub current: u32,
    /// Largest `current` seen.
    pub max: u32,
    /// When each tag's runs started.
    pub starts: HashMap<String, Vec<Instant>>,
    /// How many runs of each tag reached `end`.
    pub ends: HashMap<String, u32>,
    /// Runs whose connection dropped before `end` (their sandbox died).
    pub aborted: u32,
}

/// The running server; stops when dropped.
pub struct Probe {
    pub port: u16,
    report: Arc<Mutex<Report>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Probe {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the probe");
        let port = listener.local_addr().expect("probe address").port();
        let report = Arc::new(Mutex::new(Report::default()));
        let task = tokio::spawn(accept(listener, report.clone()));
        Self { port, report, task }
    }

    /// The `lamina cluster` flag that lets sandboxes reach the probe.
    pub fn allow_arg(&self) -> String {
        format!("--sandbox-allow-host-ports={}", self.port)
    }

    /// A copy of what was reported so far.
    pub fn report(&self) -> Report {
        self.report.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Python handler: sleeps `event["hold"]` seconds (default 1) and returns the event. When the
    /// event has a `tag`, the run is reported: `start <tag>` before the sleep, `end <tag>` after.
    pub fn function_source(&self) -> String {
        format!(
            r#"import socket
import time

PORT = {port}


def talk(f, line):
    f.write(line + "\n")
    f.flush()
    ack = f.readline()
    if ack.strip() != "ok":
        raise RuntimeError("probe answered %r" % ack)


def handler(event, context):
    tag = event.get("tag")
    if tag:
        s = socket.create_connection(("127.0.0.1", PORT), timeout=20)
        f = s.makefile("rw")
        talk(f, "start " + tag)
    time.sleep(float(event.get("hold", 1.0)))
    if tag:
        talk(f, "end " + tag)
        s.close()
        print("probe-run " + tag)
    return event
"#,
            port = self.port
        )
    }
}

async fn accept(listener: TcpListener, report: Arc<Mutex<Report>>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve(stream, report.clone()));
    }
}

/// One run's connection: counts it from `start` until `end` or until the connection drops.
async fn serve(stream: tokio::net::TcpStream, report: Arc<Mutex<Report>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut open = false;
    while let Ok(Some(line)) = lines.next_line().await {
        {
            let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
            match line.split_once(' ') {
                Some(("start", tag)) if !open => {
                    open = true;
                    r.current += 1;
                    r.max = r.max.max(r.current);
                    r.starts.entry(tag.to_owned()).or_default().push(Instant::now());
                }
                Some(("end", tag)) if open => {
                    open = false;
                    r.current -= 1;
                    *r.ends.entry(tag.to_owned()).or_default() += 1;
                }
                _ => break,
            }
        }
        if write.write_all(b"ok\n").await.is_err() {
            break;
        }
    }
    if open {
        let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
        r.current -= 1;
        r.aborted += 1;
    }
}
