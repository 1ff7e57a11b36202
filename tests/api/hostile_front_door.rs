//! The public HTTP front door against hostile clients: bodies nobody vouched for are not read,
//! every part of a request has a deadline, a body past its operation's ceiling is refused before
//! it is all sent, and the operator endpoints are not public. Raw TCP where a real client would
//! behave; the Rust AWS SDK where it is the client.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use lamina_tests::{Backend, Tenant, TestEnv, python_zip};
use serde_json::json;

const MB: u64 = 1024 * 1024;

/// A server whose header and body deadlines are short enough to test.
async fn start() -> TestEnv {
    TestEnv::start_with(Backend::Sqlite, |o| {
        o.http.header_timeout = Duration::from_secs(2);
        o.http.body_timeout = Duration::from_secs(2);
    })
    .await
    .expect("sqlite always available")
}

/// What the server answered to a request whose body the client kept sending.
struct Answer {
    head: String,
    /// Body bytes the client had written when the answer arrived.
    sent: u64,
    elapsed: Duration,
}

/// Sends `head` and then `body_len` bytes as fast as the server takes them, and reads the answer
/// while still sending.
async fn post_raw(addr: SocketAddr, head: String, body_len: u64) -> Answer {
    tokio::task::spawn_blocking(move || {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_write_timeout(Some(Duration::from_secs(10))).expect("timeout");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let sent = Arc::new(AtomicU64::new(0));
        let mut writer = stream.try_clone().expect("clone");
        let counter = sent.clone();
        let started = Instant::now();
        let sender = std::thread::spawn(move || {
            writer.write_all(head.as_bytes())?;
            let chunk = vec![b' '; 64 * 1024];
            let mut left = body_len;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                writer.write_all(&chunk[..n])?;
                counter.fetch_add(n as u64, Ordering::SeqCst);
                left -= n as u64;
            }
            std::io::Result::Ok(())
        });
        let mut reader = stream.try_clone().expect("clone");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("reading the answer failed after {:?}: {e}", started.elapsed()),
            }
        }
        let answer = Answer {
            head: String::from_utf8_lossy(&got).into_owned(),
            sent: sent.load(Ordering::SeqCst),
            elapsed: started.elapsed(),
        };
        let _ = stream.shutdown(std::net::Shutdown::Both);
        let _ = sender.join();
        answer
    })
    .await
    .expect("raw client")
}

/// SigV4 headers (but Host) for `method` `path` with `x-amz-content-sha256: UNSIGNED-PAYLOAD`, as
/// `Name: value\r\n` lines.
fn signed_headers(env: &TestEnv, t: &Tenant, method: &str, path: &str, secret: &str) -> String {
    use aws_sigv4::http_request::{PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign};
    let host = env.endpoint().trim_start_matches("http://").to_owned();
    let url = format!("{}{path}", env.endpoint());
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(&t.access_key_id, secret, None, None, "t").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("lambda")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let headers = [("host", host.as_str())];
    let signable =
        SignableRequest::new(method, &url, headers.into_iter(), SignableBody::UnsignedPayload).expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut req = http::Request::builder().method(method).uri(&url).header("host", &host).body(()).expect("request");
    instructions.apply_to_request_http1x(&mut req);
    assert!(req.headers().contains_key("x-amz-content-sha256"), "the payload hash is declared");
    // Host is written by the caller, with the request line.
    req.headers()
        .iter()
        .filter(|(k, _)| *k != http::header::HOST)
        .map(|(k, v)| format!("{k}: {}\r\n", v.to_str().expect("header text")))
        .collect()
}

fn status(answer: &Answer) -> u16 {
    answer.head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

const INVOKE: &str = "/2015-03-31/functions/f/invocations";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_nobody_vouched_for_are_not_read() {
    let env = start().await;
    let t = env.tenant().await;
    let host = env.server.addr;
    let big = 70 * MB;
    let cases = [
        ("no credentials", String::new(), "MissingAuthenticationTokenException"),
        (
            "an unknown access key",
            signed_headers(
                &env,
                &Tenant { access_key_id: "AKIANOBODY0000000000".into(), ..t.clone() },
                "POST",
                INVOKE,
                "x",
            ),
            "UnrecognizedClientException",
        ),
        (
            "a known key with a wrong signature",
            signed_headers(&env, &t, "POST", INVOKE, "not-the-secret"),
            "InvalidSignatureException",
        ),
    ];
    for (what, auth, code) in cases {
        let head = format!("POST {INVOKE} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: {big}\r\n\r\n");
        let answer = post_raw(host, head, big).await;
        eprintln!("{what}: {} after {:?}, {} body bytes sent", status(&answer), answer.elapsed, answer.sent);
        assert_eq!(status(&answer), 403, "{what}: {}", answer.head);
        assert!(answer.head.contains(code), "{what}: {}", answer.head);
        // The server answered long before the body could have been read (loopback buffers hold
        // a few MB at most).
        assert!(answer.sent < 16 * MB, "{what}: {} MB sent before the answer", answer.sent / MB);
        assert!(answer.elapsed < Duration::from_secs(5), "{what}: answered after {:?}", answer.elapsed);
    }
    // The server is still well.
    let c = env.lambda(&t);
    assert!(c.list_functions().send().await.is_ok());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_past_its_ceiling_is_refused_unread() {
    let env = start().await;
    let t = env.tenant().await;
    let host = env.server.addr;
    let auth = signed_headers(&env, &t, "POST", INVOKE, &t.secret_access_key);
    let big = 200 * MB;
    let head = format!("POST {INVOKE} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: {big}\r\n\r\n");
    let answer = post_raw(host, head, big).await;
    eprintln!("200 MB Invoke: {} after {:?}, {} MB sent", status(&answer), answer.elapsed, answer.sent / MB);
    assert_eq!(status(&answer), 413, "{}", answer.head);
    assert!(answer.head.contains("RequestEntityTooLargeException"), "{}", answer.head);
    assert!(answer.sent < 32 * MB, "{} MB sent before the answer", answer.sent / MB);

    // The same through the SDK, which does not declare a payload hash: still AWS's error.
    let c = env.lambda(&t);
    let over = c.invoke().function_name("f").payload(Blob::new(vec![b' '; 7 * MB as usize])).send().await;
    let (code, message) = crate::error_of(over);
    assert_eq!(code, "RequestEntityTooLargeException");
    assert_eq!(message, "Request must be smaller than 6291456 bytes for the InvokeFunction operation");
    // A small operation has a small ceiling.
    let policy = "/2015-03-31/functions/f/policy";
    let auth = signed_headers(&env, &t, "POST", policy, &t.secret_access_key);
    let head = format!("POST {policy} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: {}\r\n\r\n", 20 * MB);
    let answer = post_raw(host, head, 20 * MB).await;
    assert_eq!(status(&answer), 413, "{}", answer.head);
    assert!(answer.sent < 16 * MB, "{} MB sent before the answer", answer.sent / MB);
    env.stop().await;
}

/// Reads until the server closes the connection (or `bound` passes); the time it took.
fn closed_within(mut s: &TcpStream, bound: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let mut buf = [0u8; 1024];
    while started.elapsed() < bound {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off() {
    let env = start().await;
    let addr = env.server.addr;
    let endpoint = env.endpoint();
    // Headers at one byte every 300 ms (a slowloris), on several connections.
    let slow = tokio::task::spawn_blocking(move || {
        let conns: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).expect("connect")).collect();
        let started = Instant::now();
        let line = b"GET /health HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for (i, byte) in line.iter().enumerate() {
            let mut open = 0;
            for mut c in &conns {
                if c.write_all(&[*byte]).is_ok() {
                    open += 1;
                }
            }
            if open == 0 {
                return Some((started.elapsed(), i));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        None
    });
    // An idle connection that never sends anything.
    let idle = tokio::task::spawn_blocking(move || {
        let s = TcpStream::connect(addr).expect("connect");
        closed_within(&s, Duration::from_secs(10))
    });
    // Meanwhile other clients are served.
    let client = reqwest::Client::new();
    for _ in 0..10 {
        let r = client.get(format!("{endpoint}/health")).send().await.expect("health");
        assert_eq!(r.status().as_u16(), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cut = slow.await.expect("slow client");
    let (after, bytes) = cut.expect("the slowloris connections were never closed");
    eprintln!("slowloris cut off after {after:?} ({bytes} header bytes)");
    assert!(after < Duration::from_secs(6), "cut off after {after:?}");
    let idle = idle.await.expect("idle client").expect("the idle connection was never closed");
    eprintln!("idle connection closed after {idle:?}");
    assert!(idle >= Duration::from_millis(1500) && idle < Duration::from_secs(5), "closed after {idle:?}");

    // A body at one byte every 300 ms, from an authenticated caller: 408, then the connection closes.
    let t = env.tenant().await;
    let auth = signed_headers(&env, &t, "POST", INVOKE, &t.secret_access_key);
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(format!("POST {INVOKE} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 1000\r\n\r\n").as_bytes())
            .expect("head");
        let started = Instant::now();
        let mut reader = s.try_clone().expect("clone");
        let trickle = std::thread::spawn(move || {
            for _ in 0..40 {
                if s.write_all(b" ").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        reader.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
        let mut got = String::new();
        let _ = reader.read_to_string(&mut got);
        let _ = trickle.join();
        (got, started.elapsed())
    })
    .await
    .expect("slow body");
    eprintln!("slow body answered after {:?}: {}", answer.1, answer.0.lines().next().unwrap_or_default());
    assert!(answer.0.starts_with("HTTP/1.1 408"), "{}", answer.0);
    assert!(answer.1 < Duration::from_secs(6), "answered after {:?}", answer.1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_endpoints_are_not_public_and_error_labels_are_bounded() {
    let env = start().await;
    let client = reqwest::Client::new();
    let public = client.get(format!("{}/metrics", env.endpoint())).send().await.expect("public metrics");
    assert_eq!(public.status().as_u16(), 404);
    assert_eq!(client.get(format!("{}/health", env.endpoint())).send().await.expect("health").status(), 200);
    assert_eq!(client.get(format!("{}/health", env.admin_endpoint())).send().await.expect("health").status(), 200);

    // A function that raises a new error type on every call.
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let name = format!("errors-{}", uuid::Uuid::new_v4().simple());
    let src = "def handler(event, context):\n    raise type('Err%d' % event['n'], (Exception,), {})('boom')\n";
    c.create_function()
        .function_name(&name)
        .runtime(Runtime::from("python3.11"))
        .role("arn:aws:iam::123456789012:role/lambda-role")
        .handler("lambda_function.handler")
        .code(FunctionCode::builder().zip_file(Blob::new(python_zip(src))).build())
        .send()
        .await
        .expect("create");
    const TYPES: usize = 1000;
    const CALLERS: usize = 4;
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for k in 0..CALLERS {
        let (c, name) = (c.clone(), name.clone());
        callers.spawn(async move {
            for n in (k..TYPES).step_by(CALLERS) {
                let out = c
                    .invoke()
                    .function_name(&name)
                    .payload(Blob::new(json!({"n": n}).to_string()))
                    .send()
                    .await
                    .expect("invoke");
                assert!(out.function_error().is_some(), "the function raised");
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done.expect("caller");
    }
    eprintln!("{TYPES} failing invocations in {:?}", started.elapsed());

    let text = client
        .get(format!("{}/metrics", env.admin_endpoint()))
        .send()
        .await
        .expect("admin metrics")
        .text()
        .await
        .expect("text");
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("lamina_errors_total{") && l.contains(&format!("function=\"{name}\"")))
        .collect();
    eprintln!("error series of the function: {series:?}");
    assert!(!series.is_empty(), "the errors are counted:\n{text}");
    assert!(series.len() <= 2, "{} series for one function's errors", series.len());
    let total: f64 = series.iter().filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum();
    assert_eq!(total as usize, TYPES, "every error is still counted");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_in_memory_are_bounded_over_all_requests() {
    let env = TestEnv::start_with(Backend::Sqlite, |o| {
        o.http.body_timeout = Duration::from_secs(2);
        o.http.body_memory = 8 * MB as usize;
    })
    .await
    .expect("sqlite always available");
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let src = "import time\ndef handler(event, context):\n    time.sleep(4)\n    return len(event)\n";
    c.create_function()
        .function_name("holder")
        .timeout(10)
        .runtime(Runtime::from("python3.11"))
        .role("arn:aws:iam::123456789012:role/lambda-role")
        .handler("lambda_function.handler")
        .code(FunctionCode::builder().zip_file(Blob::new(python_zip(src))).build())
        .send()
        .await
        .expect("create");
    // A 6 MB invocation holds 6 MB of the 8 MB budget while it runs (4 s).
    let payload = format!("\"{}\"", "a".repeat(6 * MB as usize - 2));
    let holder = tokio::spawn({
        let c = c.clone();
        async move { c.invoke().function_name("holder").payload(Blob::new(payload)).send().await }
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Another 6 MB body cannot be held as well: refused (503) within the body deadline, unread.
    let host = env.server.addr;
    let auth = signed_headers(&env, &t, "POST", INVOKE, &t.secret_access_key);
    let big = 6 * MB;
    let head = format!("POST {INVOKE} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: {big}\r\n\r\n");
    let answer = post_raw(host, head, big).await;
    eprintln!("second 6 MB body: {} after {:?}, {} MB sent", status(&answer), answer.elapsed, answer.sent / MB);
    assert_eq!(status(&answer), 503, "{}", answer.head);
    assert!(answer.head.contains("ServiceUnavailableException"), "{}", answer.head);
    let held = holder.await.expect("holder task").expect("the first invocation is answered");
    assert_eq!(held.status_code(), 200);
    // Small requests are not held up by the budget once it is free again.
    assert!(c.list_functions().send().await.is_ok());
    env.stop().await;
}
