//! The Lambda Runtime API served to one sandbox on its own loopback port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use crate::logs::LogCapture;

const PREFIX: &str = "/2018-06-01/runtime/";

/// Connections one sandbox may hold open at once; more are closed as soon as they are accepted.
/// A runtime needs one or two (our bootstraps keep one alive); the cap keeps a function that
/// opens thousands from using up the host's file descriptors (docs/security.md).
pub(crate) const MAX_CONNECTIONS: usize = 32;
/// A connection that sends no request head for this long is closed: idle kept-alive connections
/// and half-sent heads do not live forever. Longer than a runtime takes between calls when it
/// is busy (our bootstraps reconnect once when the host closed an idle connection).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a body upload may take; a runtime sends at loopback speed.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an oversized body is read and dropped before the connection is given up.
const DRAIN_FACTOR: u64 = 4;
/// Pause after a failed accept (`EMFILE`, `ENFILE`, ...): retrying at once would spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the runtime reported for an invocation.
#[derive(Debug)]
pub(crate) enum RuntimeResult {
    /// `/response` body.
    Response(Bytes),
    /// `/error` document (JSON).
    Error(Bytes),
    /// `/init/error` document (JSON); the sandbox is unusable.
    InitError(Bytes),
    /// The response was larger than allowed.
    TooLarge,
}

/// An invocation waiting to be fetched with `/next`.
pub(crate) struct Pending {
    pub(crate) request_id: String,
    pub(crate) deadline_ms: i64,
    pub(crate) invoked_arn: String,
    pub(crate) trace_id: String,
    pub(crate) client_context: Option<String>,
    pub(crate) cognito_identity: Option<String>,
    pub(crate) payload: Bytes,
    pub(crate) done: oneshot::Sender<RuntimeResult>,
}

struct Current {
    request_id: String,
    done: oneshot::Sender<RuntimeResult>,
}

#[derive(Default)]
struct State {
    pending: Option<Pending>,
    current: Option<Current>,
    /// When the runtime first asked for work (end of init).
    first_next: Option<Instant>,
    /// When the last invocation was handed out.
    delivered: Option<Instant>,
    /// The `/init/error` document, kept for an invocation submitted after it arrived.
    init_error: Option<Bytes>,
}

/// State shared by the sandbox and its Runtime API server.
pub(crate) struct RuntimeApi {
    state: Mutex<State>,
    notify: Notify,
    max_response_bytes: usize,
    logs: Arc<LogCapture>,
    /// The sandbox's uid: connections from other users are refused.
    peer_uid: Option<u32>,
    /// Connections open now (at most `MAX_CONNECTIONS`).
    connections: AtomicUsize,
    /// A result or init error body is being read: one at a time per sandbox, so a runtime costs
    /// the host at most one body's worth of memory.
    receiving: AtomicBool,
    /// `IDLE_TIMEOUT`, shorter in tests.
    idle_timeout: Duration,
}

impl RuntimeApi {
    /// `max_response_bytes` is the configured ceiling; like Lambda, 100 bytes of slack are
    /// allowed on top (6 MB gives the familiar 6291556).
    pub(crate) fn new(max_response_bytes: usize, logs: Arc<LogCapture>, peer_uid: Option<u32>) -> Arc<Self> {
        let max_response_bytes = max_response_bytes + 100;
        Arc::new(RuntimeApi {
            state: Mutex::default(),
            notify: Notify::new(),
            max_response_bytes,
            logs,
            peer_uid,
            connections: AtomicUsize::new(0),
            receiving: AtomicBool::new(false),
            idle_timeout: IDLE_TIMEOUT,
        })
    }

    /// Queues an invocation for the next `/next` call.
    pub(crate) fn submit(&self, p: Pending) {
        let mut st = self.state();
        // A runtime can fail its init before the first invocation is even queued.
        if let Some(doc) = st.init_error.clone() {
            drop(st);
            let _ = p.done.send(RuntimeResult::InitError(doc));
            return;
        }
        st.pending = Some(p);
        drop(st);
        self.notify.notify_waiters();
    }

    /// Forgets any queued or running invocation (after a timeout or crash).
    pub(crate) fn clear(&self) {
        let mut st = self.state();
        st.pending = None;
        st.current = None;
    }

    pub(crate) fn first_next(&self) -> Option<Instant> {
        self.state().first_next
    }

    pub(crate) fn delivered(&self) -> Option<Instant> {
        self.state().delivered
    }

    pub(crate) fn init_failed(&self) -> bool {
        self.state().init_error.is_some()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Accepts connections until `cancel` fires.
pub(crate) async fn serve(listener: TcpListener, api: Arc<RuntimeApi>, cancel: CancellationToken) {
    let local = listener.local_addr().ok();
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors (or another resource): the pending connection stays
                    // queued, so retrying at once would spin. Wait for some to be released.
                    tracing::warn!("runtime api accept: {e}");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        if let (Some(uid), Some(local)) = (api.peer_uid, local) {
            match socket_uid(peer, local).await {
                Some(u) if u == uid => {}
                other => {
                    tracing::warn!(%peer, owner = ?other, "refusing runtime api connection from another user");
                    continue;
                }
            }
        }
        // After the owner check: another user's connections never take this sandbox's slots.
        let Some(slot) = ConnectionSlot::take(&api) else {
            tracing::debug!(%peer, "runtime api connection limit reached: closing");
            continue;
        };
        let api = api.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let idle_timeout = api.idle_timeout;
            let svc = hyper::service::service_fn(move |req| handle(api.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(idle_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::select! {
                _ = cancel.cancelled() => {}
                r = conn => if let Err(e) = r { tracing::debug!("runtime api connection: {e}") },
            }
        });
    }
}

/// One of a sandbox's `MAX_CONNECTIONS` connections, given back on drop.
struct ConnectionSlot(Arc<RuntimeApi>);

impl ConnectionSlot {
    fn take(api: &Arc<RuntimeApi>) -> Option<ConnectionSlot> {
        let prev = api.connections.fetch_add(1, Ordering::AcqRel);
        if prev >= MAX_CONNECTIONS {
            api.connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnectionSlot(api.clone()))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The right to read one body (see `RuntimeApi::receiving`), given back on drop.
struct Receiving<'a>(&'a RuntimeApi);

impl<'a> Receiving<'a> {
    fn take(api: &'a RuntimeApi) -> Option<Receiving<'a>> {
        api.receiving.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).ok().map(|_| Receiving(api))
    }
}

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        self.0.receiving.store(false, Ordering::Release);
    }
}

/// How reading a bounded body ended.
enum BodyRead {
    Ok(Bytes),
    TooLarge,
    Failed(String),
}

/// Reads a body of at most `limit` bytes. A larger one is read on and thrown away (up to
/// `DRAIN_FACTOR` times the limit, within the body deadline) so the runtime sees the 413 rather
/// than a broken pipe, as AWS answers it; host memory never holds more than `limit`.
async fn read_body(req: Request<Incoming>, limit: usize) -> BodyRead {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut too_large = declared.is_some_and(|n| n > limit as u64);
    let mut body = req.into_body();
    let mut buf = bytes::BytesMut::new();
    let read = async {
        let mut seen: u64 = 0;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(|e| format!("read body: {e}"))?.into_data() else { continue };
            seen += data.len() as u64;
            if too_large {
                if seen > DRAIN_FACTOR * limit as u64 {
                    break;
                }
            } else if buf.len() + data.len() > limit {
                too_large = true;
                buf = bytes::BytesMut::new();
            } else {
                buf.extend_from_slice(&data);
            }
        }
        Ok::<(), String>(())
    };
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        _ if too_large => BodyRead::TooLarge,
        Ok(Ok(())) => BodyRead::Ok(buf.freeze()),
        Ok(Err(msg)) => BodyRead::Failed(msg),
        Err(_) => BodyRead::Failed("read body: timed out".to_string()),
    }
}

fn busy() -> Response<Full<Bytes>> {
    error(
        StatusCode::FORBIDDEN,
        "InvalidStateTransition",
        "another result is being posted for this runtime: one at a time",
    )
}

/// Owner uid of the TCP socket `peer` -> `local`, from `/proc/net/tcp` (sandboxes share the
/// host's network namespace, so this is how we tell them apart).
async fn socket_uid(peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    let (SocketAddr::V4(p), SocketAddr::V4(l)) = (peer, local) else {
        return None;
    };
    let fmt = |a: std::net::SocketAddrV4| format!("{:08X}:{:04X}", u32::from_le_bytes(a.ip().octets()), a.port());
    let (want_local, want_rem) = (fmt(p), fmt(l));
    let text = tokio::fs::read_to_string("/proc/net/tcp").await.ok()?;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 7 && f[1] == want_local && f[2] == want_rem).then(|| f[7].parse().ok()).flatten()
    })
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    json(status, serde_json::json!({"errorMessage": message, "errorType": error_type}).to_string())
}

async fn handle(api: Arc<RuntimeApi>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(error(StatusCode::NOT_FOUND, "NotFound", "unknown path"));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let resp = match (req.method(), parts.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => next(&api).await,
        (&Method::POST, ["invocation", id, kind @ ("response" | "error")]) => {
            let (id, is_error) = (id.to_string(), *kind == "error");
            post_result(&api, req, &id, is_error).await
        }
        (&Method::POST, ["init", "error"]) => init_error(&api, req).await,
        _ => error(StatusCode::NOT_FOUND, "NotFound", "unknown path"),
    };
    Ok(resp)
}

async fn next(api: &RuntimeApi) -> Response<Full<Bytes>> {
    loop {
        let notified = api.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut st = api.state();
            let now = Instant::now();
            st.first_next.get_or_insert(now);
            if let Some(p) = st.pending.take() {
                st.delivered = Some(now);
                let mut b = Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/json")
                    .header("lambda-runtime-aws-request-id", &p.request_id)
                    .header("lambda-runtime-deadline-ms", p.deadline_ms.to_string())
                    .header("lambda-runtime-invoked-function-arn", &p.invoked_arn)
                    .header("lambda-runtime-trace-id", &p.trace_id);
                if let Some(cc) = &p.client_context {
                    b = b.header("lambda-runtime-client-context", cc);
                }
                if let Some(ci) = &p.cognito_identity {
                    b = b.header("lambda-runtime-cognito-identity", ci);
                }
                match b.body(Full::new(p.payload)) {
                    Ok(resp) => {
                        st.current = Some(Current { request_id: p.request_id, done: p.done });
                        return resp;
                    }
                    Err(e) => {
                        // A header value the caller passed is not valid HTTP; fail that invocation.
                        let doc = serde_json::json!({"errorMessage": format!("invalid invocation header: {e}"), "errorType": "InvalidRequestContent"});
                        let _ = p.done.send(RuntimeResult::Error(doc.to_string().into()));
                        continue;
                    }
                }
            }
        }
        notified.await;
    }
}

fn is_current(api: &RuntimeApi, id: &str) -> bool {
    api.state().current.as_ref().is_some_and(|c| c.request_id == id)
}

fn complete(api: &RuntimeApi, id: &str, result: RuntimeResult) -> bool {
    let cur = {
        let mut st = api.state();
        if st.current.as_ref().is_some_and(|c| c.request_id == id) { st.current.take() } else { None }
    };
    match cur {
        Some(c) => {
            let _ = c.done.send(result);
            true
        }
        None => false,
    }
}

fn invalid_id(id: &str) -> Response<Full<Bytes>> {
    error(StatusCode::BAD_REQUEST, "InvalidRequestID", &format!("Invalid request ID: {id}"))
}

async fn post_result(api: &RuntimeApi, req: Request<Incoming>, id: &str, is_error: bool) -> Response<Full<Bytes>> {
    if !is_current(api, id) {
        return invalid_id(id);
    }
    // Refused before a byte of the body is read: a parallel post costs nothing.
    let Some(_receiving) = Receiving::take(api) else {
        return busy();
    };
    let error_type = req
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Unhandled")
        .to_string();
    let body = match read_body(req, api.max_response_bytes).await {
        BodyRead::Ok(b) => b,
        BodyRead::TooLarge => {
            api.logs.drain();
            complete(api, id, RuntimeResult::TooLarge);
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!(
                    "Response payload size exceeded maximum allowed payload size ({} bytes).",
                    api.max_response_bytes
                ),
            );
        }
        BodyRead::Failed(msg) => return error(StatusCode::BAD_REQUEST, "InvalidRequest", &msg),
    };
    // Everything the runtime wrote before posting belongs to this invocation.
    api.logs.drain();
    let result =
        if is_error { RuntimeResult::Error(error_document(body, &error_type)) } else { RuntimeResult::Response(body) };
    if complete(api, id, result) { json(StatusCode::ACCEPTED, r#"{"status":"OK"}"#) } else { invalid_id(id) }
}

/// The runtime's error body if it is JSON, else a document wrapping it.
fn error_document(body: Bytes, error_type: &str) -> Bytes {
    if serde_json::from_slice::<serde_json::Value>(&body).is_ok() {
        return body;
    }
    let msg = String::from_utf8_lossy(&body);
    serde_json::json!({"errorMessage": msg, "errorType": error_type}).to_string().into()
}

/// True while an `/init/error` may be posted: during init (before the first `/next`), once.
fn init_error_expected(api: &RuntimeApi) -> bool {
    let st = api.state();
    st.first_next.is_none() && st.init_error.is_none()
}

async fn init_error(api: &RuntimeApi, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if !init_error_expected(api) {
        return error(StatusCode::FORBIDDEN, "InvalidStateTransition", "init/error is only accepted during init");
    }
    let Some(_receiving) = Receiving::take(api) else {
        return busy();
    };
    let error_type = req
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Runtime.Unknown")
        .to_string();
    let body = match read_body(req, api.max_response_bytes).await {
        BodyRead::Ok(b) => b,
        BodyRead::TooLarge => {
            Bytes::from_static(br#"{"errorMessage":"init error document too large","errorType":"Runtime.Unknown"}"#)
        }
        BodyRead::Failed(msg) => return error(StatusCode::BAD_REQUEST, "InvalidRequest", &msg),
    };
    api.logs.drain();
    let doc = error_document(body, &error_type);
    let waiter = {
        let mut st = api.state();
        // `/next` may have been called while the body was read.
        if st.first_next.is_some() || st.init_error.is_some() {
            drop(st);
            return error(StatusCode::FORBIDDEN, "InvalidStateTransition", "init/error is only accepted during init");
        }
        st.init_error = Some(doc.clone());
        st.pending.take().map(|p| p.done).or_else(|| st.current.take().map(|c| c.done))
    };
    if let Some(done) = waiter {
        let _ = done.send(RuntimeResult::InitError(doc));
    }
    json(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    async fn server(idle_timeout: Duration) -> (SocketAddr, CancellationToken) {
        let cancel = CancellationToken::new();
        let logs = LogCapture::start(Vec::new(), cancel.clone()).expect("no pipes to wrap");
        let mut api = RuntimeApi::new(1024, logs, None);
        Arc::get_mut(&mut api).expect("not shared yet").idle_timeout = idle_timeout;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(serve(listener, api, cancel.clone()));
        (addr, cancel)
    }

    /// True if the server closed `s` within `wait`.
    fn closed_within(s: &mut std::net::TcpStream, wait: Duration) -> bool {
        s.set_read_timeout(Some(wait)).expect("set timeout");
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_beyond_the_cap_are_closed_and_idle_ones_time_out() {
        let (addr, cancel) = server(Duration::from_millis(700)).await;
        tokio::task::spawn_blocking(move || {
            let mut held: Vec<std::net::TcpStream> =
                (0..MAX_CONNECTIONS).map(|_| std::net::TcpStream::connect(addr).expect("connect")).collect();
            // Every slot is taken: the next connection is closed at once.
            let mut extra = std::net::TcpStream::connect(addr).expect("connect");
            let start = Instant::now();
            assert!(closed_within(&mut extra, Duration::from_secs(2)), "a connection beyond the cap stayed open");
            assert!(start.elapsed() < Duration::from_millis(500));
            // Held connections that send nothing are closed after the idle timeout.
            let start = Instant::now();
            for s in &mut held {
                assert!(closed_within(s, Duration::from_secs(5)), "an idle connection stayed open");
            }
            assert!(start.elapsed() >= Duration::from_millis(500), "{:?}", start.elapsed());
            // Their slots are free again: a request is answered.
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
            let mut buf = [0u8; 12];
            s.read_exact(&mut buf).expect("read status line");
            assert_eq!(&buf, b"HTTP/1.1 404");
        })
        .await
        .expect("client thread");
        cancel.cancel();
    }
}
