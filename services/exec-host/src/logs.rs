//! Function logs: capture of a sandbox's stdout/stderr attributed to invocations, and the
//! per-function store read by `ExecHost::log_events`.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use tokio::net::unix::pipe;
use tokio_util::sync::CancellationToken;

/// Output kept per invocation; the rest is read and dropped so the runtime never blocks.
const MAX_CAPTURE_BYTES: usize = 1024 * 1024;
const TRUNCATED_MARKER: &str = "...truncated\n";

/// One stored log line, as CloudWatch Logs would hold it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogEvent {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Stream name: `YYYY/MM/DD/[<version>]<32 hex>`, one per sandbox.
    pub log_stream: String,
    /// The line, including its trailing newline.
    pub message: String,
}

/// Output captured for one invocation (or between invocations).
#[derive(Debug, Default)]
pub(crate) struct Captured {
    chunks: Vec<(i64, Vec<u8>)>,
    bytes: usize,
    truncated: bool,
}

impl Captured {
    fn push(&mut self, ts: i64, data: &[u8]) {
        if self.truncated {
            return;
        }
        let room = MAX_CAPTURE_BYTES - self.bytes;
        let take = data.len().min(room);
        if take > 0 {
            self.bytes += take;
            self.chunks.push((ts, data[..take].to_vec()));
        }
        if take < data.len() {
            self.truncated = true;
        }
    }

    fn append(&mut self, other: Captured) {
        for (ts, data) in other.chunks {
            self.push(ts, &data);
        }
        self.truncated |= other.truncated;
    }

    /// Splits the output into lines (each ending in `\n`), stamped with the time its first
    /// byte arrived.
    pub(crate) fn lines(&self) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        let mut cur: Vec<u8> = Vec::new();
        let mut cur_ts = 0;
        for (ts, data) in &self.chunks {
            for &b in data {
                if cur.is_empty() {
                    cur_ts = *ts;
                }
                cur.push(b);
                if b == b'\n' {
                    out.push((cur_ts, String::from_utf8_lossy(&cur).into_owned()));
                    cur.clear();
                }
            }
        }
        if !cur.is_empty() {
            cur.push(b'\n');
            out.push((cur_ts, String::from_utf8_lossy(&cur).into_owned()));
        }
        if self.truncated {
            out.push((cur_ts, TRUNCATED_MARKER.to_string()));
        }
        out
    }
}

#[derive(Default)]
struct Sink {
    current: Option<Captured>,
    between: Captured,
}

/// Reads a sandbox's stdout and stderr and attributes the bytes to the running invocation.
pub(crate) struct LogCapture {
    pipes: Vec<PipeReader>,
    sink: Mutex<Sink>,
}

struct PipeReader {
    rx: pipe::Receiver,
    /// Held while reading so a drain and the reader task never interleave chunks.
    lock: Mutex<()>,
}

impl LogCapture {
    /// Wraps the read ends of the pipes and starts one reader task per pipe.
    pub(crate) fn start(fds: Vec<OwnedFd>, cancel: CancellationToken) -> io::Result<Arc<LogCapture>> {
        let mut pipes = Vec::new();
        for fd in fds {
            pipes.push(PipeReader { rx: pipe::Receiver::from_owned_fd(fd)?, lock: Mutex::new(()) });
        }
        let cap = Arc::new(LogCapture { pipes, sink: Mutex::new(Sink::default()) });
        for idx in 0..cap.pipes.len() {
            let cap = cap.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        r = cap.pipes[idx].rx.readable() => {
                            if r.is_err() || cap.drain_one(idx) {
                                break;
                            }
                        }
                    }
                }
            });
        }
        Ok(cap)
    }

    /// Reads everything available on pipe `idx` without blocking; true at end of file.
    fn drain_one(&self, idx: usize) -> bool {
        let p = &self.pipes[idx];
        let _guard = p.lock.lock().expect("pipe lock poisoned");
        let mut buf = [0u8; 16 * 1024];
        loop {
            match p.rx.try_read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => self.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return true,
            }
        }
    }

    /// Reads everything the runtime has written so far (called before closing an invocation).
    pub(crate) fn drain(&self) {
        for idx in 0..self.pipes.len() {
            self.drain_one(idx);
        }
    }

    fn push(&self, data: &[u8]) {
        let ts = chrono::Utc::now().timestamp_millis();
        let mut sink = self.sink.lock().expect("log sink poisoned");
        match sink.current.as_mut() {
            Some(c) => c.push(ts, data),
            None => sink.between.push(ts, data),
        }
    }

    /// Starts attributing output to a new invocation; output since the last one comes first.
    pub(crate) fn begin(&self) {
        let mut sink = self.sink.lock().expect("log sink poisoned");
        let mut cur = std::mem::take(&mut sink.between);
        if let Some(prev) = sink.current.take() {
            cur.append(prev);
        }
        sink.current = Some(cur);
    }

    /// Drains the pipes and returns the output of the invocation begun last.
    pub(crate) fn finish(&self) -> Captured {
        self.drain();
        let mut sink = self.sink.lock().expect("log sink poisoned");
        sink.current.take().unwrap_or_default()
    }
}

/// Log events of every function, newest last, bounded per function.
pub(crate) struct LogStore {
    per_function: Mutex<HashMap<(String, String), VecDeque<LogEvent>>>,
    retention: usize,
}

impl LogStore {
    pub(crate) fn new(retention: usize) -> Self {
        LogStore { per_function: Mutex::new(HashMap::new()), retention: retention.max(1) }
    }

    pub(crate) fn append(&self, account: &str, function: &str, events: Vec<LogEvent>) {
        let mut map = self.per_function.lock().expect("log store poisoned");
        let ring = map.entry((account.to_string(), function.to_string())).or_default();
        for e in events {
            if ring.len() == self.retention {
                ring.pop_front();
            }
            ring.push_back(e);
        }
    }

    pub(crate) fn events(&self, account: &str, function: &str, limit: usize) -> Vec<LogEvent> {
        let map = self.per_function.lock().expect("log store poisoned");
        let Some(ring) = map.get(&(account.to_string(), function.to_string())) else {
            return Vec::new();
        };
        let skip = ring.len().saturating_sub(limit);
        ring.iter().skip(skip).cloned().collect()
    }
}

/// Builds the log of one invocation: START, output, END, REPORT, then any service lines.
pub(crate) struct InvocationLog {
    pub(crate) stream: String,
    pub(crate) events: Vec<LogEvent>,
}

impl InvocationLog {
    pub(crate) fn new(stream: &str) -> Self {
        InvocationLog { stream: stream.to_string(), events: Vec::new() }
    }

    pub(crate) fn line(&mut self, ts: i64, text: impl Into<String>) {
        let mut message = text.into();
        if !message.ends_with('\n') {
            message.push('\n');
        }
        self.events.push(LogEvent { timestamp_ms: ts, log_stream: self.stream.clone(), message });
    }

    pub(crate) fn output(&mut self, captured: &Captured) {
        for (ts, line) in captured.lines() {
            self.line(ts, line);
        }
    }

    /// The last 4096 bytes of the text, cut at a character boundary.
    pub(crate) fn tail(&self) -> String {
        let text: String = self.events.iter().map(|e| e.message.as_str()).collect();
        tail_4k(&text).to_string()
    }
}

pub(crate) fn tail_4k(text: &str) -> &str {
    let mut start = text.len().saturating_sub(4096);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_truncation() {
        let mut c = Captured::default();
        c.push(1, b"a\nb");
        c.push(2, b"c\n");
        c.push(3, b"tail");
        let lines = c.lines();
        assert_eq!(lines, vec![(1, "a\n".into()), (1, "bc\n".into()), (3, "tail\n".into())]);
        let mut big = Captured::default();
        big.push(1, &vec![b'x'; MAX_CAPTURE_BYTES + 10]);
        assert!(big.truncated);
        assert_eq!(big.lines().last().map(|l| l.1.as_str()), Some(TRUNCATED_MARKER));
    }

    #[test]
    fn tail_cuts_at_char_boundary() {
        let s = format!("{}{}", "é".repeat(3000), "end");
        let t = tail_4k(&s);
        assert!(t.len() <= 4096 && t.ends_with("end"));
        assert!(t.starts_with('é'));
    }
}
