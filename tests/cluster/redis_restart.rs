//! Redis going away and coming back under a running cluster.
//!
//! Postgres going away is `postgres_restart.rs`, on a private server of its own.

use std::time::Duration;

use aws_sdk_lambda::types::InvocationType;
use lamina_tests::{ClusterOptions, wait_until};
use serde_json::json;
use tokio::time::Instant;

use crate::{create_python, error_of, in_ci, is_clean_5xx, payload, serial, start, wait_gone};

const ECHO: &str = r#"def handler(event, context):
    print("ran " + event.get("tag", ""))
    return event
"#;

/// A `redis-server` of this test alone (never the machine's shared one), without persistence:
/// a restart comes back empty, as after losing a cache node.
struct PrivateRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl PrivateRedis {
    /// Starts on a free port; `None` (skip) when `redis-server` is not installed, outside CI.
    async fn start() -> Option<Self> {
        let installed = std::process::Command::new("redis-server").arg("--version").output().is_ok();
        if !installed {
            assert!(!in_ci(), "redis-server is required under CI");
            eprintln!("skipping: redis-server is not installed; CI would fail here");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut redis = Self { port, dir: tempfile::tempdir().expect("temp dir"), child: None };
        redis.run().await;
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server on its port and waits until it answers.
    async fn run(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("redis.log")).expect("redis log");
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let url = self.url();
        wait_until(Duration::from_secs(10), "the private redis to answer", || {
            let url = url.clone();
            async move {
                let client = redis::Client::open(url).ok()?;
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING").query_async::<String>(&mut conn).await.ok()
            }
        })
        .await;
    }

    /// SIGKILL (a crash: nothing is saved), and waits for the exit.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().expect("redis pid");
            crate::kill9(pid);
            let _ = child.wait().await;
            wait_gone(pid).await;
        }
    }
}

/// Redis dies under a running cluster: Invoke answers a clean 5xx at once (an Event is not
/// acknowledged, since it could not be made durable); Redis comes back empty on the same port:
/// without restarting Lamina, execution hosts register again, invocations succeed and Event
/// invocations are queued and run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restart_under_a_running_cluster() {
    let _serial = serial().await;
    let Some(mut redis) = PrivateRedis::start().await else { return };
    let layout = ClusterOptions { redis_url: redis.url(), ..ClusterOptions::default() };
    let Some(env) = start(&layout).await else { return };
    let tenant = env.tenant().await;
    let client = env.lambda(&tenant);
    create_python(&client, "echo", ECHO, 10).send().await.expect("create echo");
    let invoke = |tag: &str| client.invoke().function_name("echo").payload(payload(&json!({"tag": tag}))).send();
    invoke("before").await.expect("runs with Redis up");

    redis.kill().await;
    for i in 0..3 {
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(10), invoke(&format!("down-{i}")))
            .await
            .expect("Invoke answers while Redis is down, without hanging");
        let (status, code) = error_of(&answer.expect_err("Invoke cannot succeed without Redis"));
        assert!(is_clean_5xx(status, &code), "Invoke while Redis is down: {status} {code}");
        eprintln!("Invoke while Redis is down: {status} {code} in {:?}", started.elapsed());
        assert!(started.elapsed() < Duration::from_secs(5), "answered quickly: {:?}", started.elapsed());
    }
    let started = Instant::now();
    let event = tokio::time::timeout(
        Duration::from_secs(10),
        client
            .invoke()
            .function_name("echo")
            .invocation_type(InvocationType::Event)
            .payload(payload(&json!({"tag": "lost"})))
            .send(),
    )
    .await
    .expect("Event answers while Redis is down, without hanging");
    let (status, code) = error_of(&event.expect_err("an Event cannot be acknowledged without its queue"));
    assert!(is_clean_5xx(status, &code), "Event while Redis is down: {status} {code}");
    eprintln!("Event while Redis is down: {status} {code} in {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5), "answered quickly: {:?}", started.elapsed());

    redis.run().await;
    let back = Instant::now();
    wait_until(Duration::from_secs(20), "invocations to succeed again", || {
        let answer = invoke("after");
        async move {
            match answer.await {
                Ok(out) => {
                    let body: serde_json::Value =
                        serde_json::from_slice(out.payload().map(|b| b.as_ref()).unwrap_or_default()).expect("JSON");
                    assert_eq!(body, json!({"tag": "after"}));
                    Some(())
                }
                Err(err) => {
                    let (status, code) = error_of(&err);
                    assert!(is_clean_5xx(status, &code), "Invoke while Redis comes back: {status} {code}");
                    None
                }
            }
        }
    })
    .await;
    eprintln!("invocations succeed {:?} after Redis came back", back.elapsed());

    let queued = client
        .invoke()
        .function_name("echo")
        .invocation_type(InvocationType::Event)
        .payload(payload(&json!({"tag": "queued-after"})))
        .send()
        .await
        .expect("Event accepted once Redis is back");
    assert_eq!(queued.status_code(), 202);
    wait_until(Duration::from_secs(20), "the event queued after the restart to run", || {
        let (env, tenant) = (&env, &tenant);
        async move { env.log_messages(tenant, "echo").await.iter().any(|m| m.contains("ran queued-after")).then_some(()) }
    })
    .await;
    env.stop().await;
    redis.kill().await;
}
