//! Function logs: capture of a sandbox's stdout/stderr attributed to invocations, and the
//! per-function store read by `ExecHost::log_events`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use tokio::net::unix::pipe;
use tokio_util::sync::CancellationToken;

/// Output kept per invocation; the rest is read and dropped so the runtime never blocks.
const MAX_CAPTURE_BYTES: usize = 1024 * 1024;
const TRUNCATED_MARKER: &str = "...truncated\n";
/// Largest log event, as CloudWatch Logs takes them; a longer line is cut and marked as Lambda
/// marks a cut error log (docs/semantics ERR-6).
pub(crate) const MAX_EVENT_BYTES: usize = 256 * 1024;
const CUT_MARKER: &str = "Truncated by Lambda\n";

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
        let _guard = p.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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
        let mut sink = self.sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match sink.current.as_mut() {
            Some(c) => c.push(ts, data),
            None => sink.between.push(ts, data),
        }
    }

    /// Starts attributing output to a new invocation; output since the last one comes first.
    pub(crate) fn begin(&self) {
        let mut sink = self.sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut cur = std::mem::take(&mut sink.between);
        if let Some(prev) = sink.current.take() {
            cur.append(prev);
        }
        sink.current = Some(cur);
    }

    /// Drains the pipes and returns the output of the invocation begun last.
    pub(crate) fn finish(&self) -> Captured {
        self.drain();
        let mut sink = self.sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        sink.current.take().unwrap_or_default()
    }
}

/// What the log store may hold. Events cost their text plus `EVENT_OVERHEAD`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogLimits {
    pub(crate) events_per_function: usize,
    pub(crate) bytes_per_function: usize,
    pub(crate) bytes_per_account: usize,
    pub(crate) bytes_total: usize,
}

/// Bookkeeping per stored event (the `Arc`, the deque slot, the timestamp), counted against the
/// byte bounds so that a flood of empty lines is bounded too.
const EVENT_OVERHEAD: usize = 64;

type FunctionKey = (String, String);

struct Stored {
    seq: u64,
    bytes: usize,
    event: Arc<LogEvent>,
}

#[derive(Default)]
struct FunctionLog {
    events: VecDeque<Stored>,
    bytes: usize,
}

#[derive(Default)]
struct AccountLog {
    bytes: usize,
    /// (sequence number of its oldest event, function) for every function with events.
    oldest: BTreeSet<(u64, String)>,
}

#[derive(Default)]
struct Store {
    functions: HashMap<FunctionKey, FunctionLog>,
    accounts: HashMap<String, AccountLog>,
    /// (oldest event, function) for every function with events, host-wide.
    oldest: BTreeSet<(u64, FunctionKey)>,
    bytes: usize,
    next_seq: u64,
}

impl Store {
    /// Drops the oldest event of `key`.
    fn pop_oldest(&mut self, key: &FunctionKey) {
        let Some(f) = self.functions.get_mut(key) else { return };
        let Some(gone) = f.events.pop_front() else { return };
        f.bytes -= gone.bytes;
        let next = f.events.front().map(|s| s.seq);
        if next.is_none() {
            self.functions.remove(key);
        }
        self.bytes -= gone.bytes;
        self.oldest.remove(&(gone.seq, key.clone()));
        if let Some(seq) = next {
            self.oldest.insert((seq, key.clone()));
        }
        if let Some(a) = self.accounts.get_mut(&key.0) {
            a.bytes -= gone.bytes;
            a.oldest.remove(&(gone.seq, key.1.clone()));
            match next {
                Some(seq) => {
                    a.oldest.insert((seq, key.1.clone()));
                }
                None if a.oldest.is_empty() => {
                    self.accounts.remove(&key.0);
                }
                None => {}
            }
        }
    }

    fn push(&mut self, key: &FunctionKey, event: Arc<LogEvent>) {
        let bytes = event.message.len() + event.log_stream.len() + EVENT_OVERHEAD;
        let seq = self.next_seq;
        self.next_seq += 1;
        let f = self.functions.entry(key.clone()).or_default();
        let first = f.events.is_empty();
        f.events.push_back(Stored { seq, bytes, event });
        f.bytes += bytes;
        self.bytes += bytes;
        let a = self.accounts.entry(key.0.clone()).or_default();
        a.bytes += bytes;
        if first {
            a.oldest.insert((seq, key.1.clone()));
            self.oldest.insert((seq, key.clone()));
        }
    }

    fn enforce(&mut self, key: &FunctionKey, limits: &LogLimits) {
        while self
            .functions
            .get(key)
            .is_some_and(|f| f.events.len() > limits.events_per_function || f.bytes > limits.bytes_per_function)
        {
            self.pop_oldest(key);
        }
        while let Some(a) = self.accounts.get(&key.0).filter(|a| a.bytes > limits.bytes_per_account) {
            let Some((_, function)) = a.oldest.first() else { break };
            let victim = (key.0.clone(), function.clone());
            self.pop_oldest(&victim);
        }
        while self.bytes > limits.bytes_total {
            let Some((_, victim)) = self.oldest.first().cloned() else { break };
            self.pop_oldest(&victim);
        }
    }
}

/// Log events of every function, newest last, bounded in count and bytes per function, in bytes
/// per account and in total; the oldest go first. Readers copy `Arc`s under the lock and the
/// text after it, so a large read never holds up the invocations that append.
pub(crate) struct LogStore {
    store: Mutex<Store>,
    limits: LogLimits,
}

impl LogStore {
    pub(crate) fn new(limits: LogLimits) -> Self {
        let limits = LogLimits { events_per_function: limits.events_per_function.max(1), ..limits };
        LogStore { store: Mutex::new(Store::default()), limits }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn append(&self, account: &str, function: &str, events: Vec<LogEvent>) {
        let events: Vec<Arc<LogEvent>> = events.into_iter().map(Arc::new).collect();
        let key = (account.to_string(), function.to_string());
        let mut store = self.store();
        for e in events {
            store.push(&key, e);
        }
        store.enforce(&key, &self.limits);
    }

    pub(crate) fn events(&self, account: &str, function: &str, limit: usize) -> Vec<LogEvent> {
        let picked: Vec<Arc<LogEvent>> = {
            let store = self.store();
            let Some(f) = store.functions.get(&(account.to_string(), function.to_string())) else {
                return Vec::new();
            };
            let skip = f.events.len().saturating_sub(limit);
            f.events.iter().skip(skip).map(|s| s.event.clone()).collect()
        };
        picked.iter().map(|e| LogEvent::clone(e)).collect()
    }

    /// (events, bytes) held now, host-wide.
    #[cfg(test)]
    fn usage(&self) -> (usize, usize) {
        let store = self.store();
        (store.functions.values().map(|f| f.events.len()).sum(), store.bytes)
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
        if message.len() > MAX_EVENT_BYTES {
            let mut keep = MAX_EVENT_BYTES - CUT_MARKER.len();
            while !message.is_char_boundary(keep) {
                keep -= 1;
            }
            message.truncate(keep);
            message.push_str(CUT_MARKER);
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

    fn event(len: usize) -> LogEvent {
        LogEvent { timestamp_ms: 0, log_stream: "s".into(), message: "x".repeat(len) }
    }

    #[test]
    fn long_lines_are_cut_with_a_marker() {
        let mut log = InvocationLog::new("s");
        log.line(1, format!("{}{}", "é".repeat(200_000), "end"));
        let m = &log.events[0].message;
        assert!(m.len() <= MAX_EVENT_BYTES, "{}", m.len());
        assert!(m.ends_with(CUT_MARKER) && m.starts_with('é'));
        log.line(1, "short");
        assert_eq!(log.events[1].message, "short\n");
    }

    #[test]
    fn store_is_bounded_per_function_account_and_host() {
        let limits = LogLimits {
            events_per_function: 1000,
            bytes_per_function: 10_000,
            bytes_per_account: 25_000,
            bytes_total: 40_000,
        };
        let store = LogStore::new(limits);
        for i in 0..200 {
            store.append("a1", &format!("f{}", i % 10), vec![event(900)]);
            store.append("a2", "g", vec![event(900)]);
            store.append(&format!("acct{i}"), "h", vec![event(900)]);
        }
        let (_, bytes) = store.usage();
        assert!(bytes <= 40_000, "{bytes}");
        let fn_bytes = |a: &str, f: &str| store.events(a, f, usize::MAX).len() * (900 + 1 + EVENT_OVERHEAD);
        assert!(fn_bytes("a2", "g") <= 10_000);
        let a1: usize = (0..10).map(|i| fn_bytes("a1", &format!("f{i}"))).sum();
        assert!(a1 <= 25_000, "{a1}");
        // The newest events survive.
        assert_eq!(store.events("acct199", "h", 10).len(), 1);
        assert!(store.events("acct0", "h", 10).is_empty());
    }

    #[test]
    fn store_keeps_the_newest_events_per_function() {
        let limits = LogLimits {
            events_per_function: 3,
            bytes_per_function: 1 << 20,
            bytes_per_account: 1 << 20,
            bytes_total: 1 << 20,
        };
        let store = LogStore::new(limits);
        for i in 0..5 {
            store.append("a", "f", vec![LogEvent { timestamp_ms: i, log_stream: "s".into(), message: "m".into() }]);
        }
        let ts: Vec<i64> = store.events("a", "f", 10).iter().map(|e| e.timestamp_ms).collect();
        assert_eq!(ts, vec![2, 3, 4]);
        assert_eq!(store.events("a", "f", 2).len(), 2);
    }

    #[test]
    fn tail_cuts_at_char_boundary() {
        let s = format!("{}{}", "é".repeat(3000), "end");
        let t = tail_4k(&s);
        assert!(t.len() <= 4096 && t.ends_with("end"));
        assert!(t.starts_with('é'));
    }
}
