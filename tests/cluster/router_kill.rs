//! SIGKILL of the invoke routers while they hold concurrency slots.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use std::path::Path;
use std::time::Duration;

use lamina_tests::{ClusterOptions, wait_until};
use serde_json::json;
use tokio::time::Instant;

use crate::{create_python, error_of, is_clean_5xx, join_all, kill9, payload, serial, start, wait_gone};

const LONG: &str = r#"import time


def handler(event, context):
    time.sleep(20)
    return {"slept": 20}
"#;
const QUICK: &str = r#"def handler(event, context):
    return event
"#;

/// A cluster child restarted by the test: the cluster does not restart its children. Killed when
/// dropped.
struct Respawned {
    child: tokio::process::Child,
}

impl Respawned {
    /// Reads the command line and environment of the running `pid`, to start the same process
    /// again once it is gone.
    fn capture(pid: u32) -> (Vec<OsString>, Vec<(OsString, OsString)>) {
        let split = |bytes: Vec<u8>| -> Vec<OsString> {
            bytes.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| OsString::from_vec(a.to_vec())).collect()
        };
        let argv = split(std::fs::read(format!("/proc/{pid}/cmdline")).expect("read cmdline"));
        let env = split(std::fs::read(format!("/proc/{pid}/environ")).expect("read environ"))
            .into_iter()
            .filter_map(|kv| {
                let kv = kv.into_vec();
                let eq = kv.iter().position(|b| *b == b'=')?;
                Some((OsString::from_vec(kv[..eq].to_vec()), OsString::from_vec(kv[eq + 1..].to_vec())))
            })
            .collect();
        (argv, env)
    }

    /// Starts `argv` with `env`, as a child of the test. Not tied to the cluster's life (the
    /// cluster is not its parent), so without `LAMINA_CLUSTER_PID`.
    fn start(argv: &[OsString], env: &[(OsString, OsString)], log: &Path) -> Self {
        let log = std::fs::File::create(log).expect("create respawned log");
        let child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(env.iter().filter(|(k, _)| k != "LAMINA_CLUSTER_PID").cloned())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("respawn");
        Self { child }
    }

    /// SIGTERM, then waits for the exit.
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// Live (unexpired) concurrency leases of `account` in Redis: the API shows them only as throttles.
async fn live_leases(redis_url: &str, prefix: &str, account: &str) -> u32 {
    let client = redis::Client::open(redis_url).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect to redis");
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.expect("TIME");
    let now_ms = secs * 1000 + micros / 1000;
    redis::cmd("ZCOUNT")
        .arg(format!("{prefix}:lease:{account}"))
        .arg(format!("({now_ms}"))
        .arg("+inf")
        .query_async(&mut conn)
        .await
        .expect("ZCOUNT")
}

/// Tenant limit 2; two 20-second invocations hold both slots; every router is SIGKILLed. Both
/// calls end at once with a clean 5xx. The dead router's slots are not released by anyone; the
/// routers are started again (as a supervisor would) and within the lease TTL (plus start-up
/// margin) the tenant's two slots are free again: two concurrent calls succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_the_routers_holding_slots() {
    let _serial = serial().await;
    let layout = ClusterOptions { routers: 2, ..ClusterOptions::default() };
    let Some(mut env) = start(&layout).await else { return };
    let tenant = env.tenant_with(json!({"ConcurrentExecutions": 2})).await;
    let client = env.lambda(&tenant);
    create_python(&client, "long", LONG, 30).send().await.expect("create long");
    create_python(&client, "quick", QUICK, 10).send().await.expect("create quick");
    let (redis_url, prefix) = {
        let c = env.server.cluster().expect("cluster");
        (c.redis_url.clone(), c.redis_prefix.clone())
    };

    let long_calls: Vec<_> = (0..2)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let r = client.invoke().function_name("long").send().await;
                (Instant::now(), r.map(|_| ()).map_err(|e| error_of(&e)))
            })
        })
        .collect();
    let account = tenant.account_id.clone();
    wait_until(Duration::from_secs(15), "both slots to be held", || {
        let (redis_url, prefix, account) = (&redis_url, &prefix, &account);
        async move { (live_leases(redis_url, prefix, account).await == 2).then_some(()) }
    })
    .await;

    let routers = env.server.cluster().expect("cluster").children("invoke-router");
    assert_eq!(routers.len(), 2, "two routers: {routers:?}");
    let captured: Vec<_> = routers.iter().map(|&pid| Respawned::capture(pid)).collect();
    for &pid in &routers {
        kill9(pid);
    }
    let killed = Instant::now();
    for &pid in &routers {
        wait_gone(pid).await;
    }
    // Nobody released the slots: the dead router held them, and its leases run out by themselves.
    let held = live_leases(&redis_url, &prefix, &account).await;
    if killed.elapsed() < Duration::from_secs(layout.lease_ttl_secs) {
        assert_eq!(held, 2, "the killed routers' slots stay taken until their leases expire");
    }

    for call in long_calls {
        let (ended, result) = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("a call through a killed router ends at once, not at the function timeout")
            .expect("task");
        let (status, code) = result.expect_err("a call whose router was killed cannot succeed");
        assert!(is_clean_5xx(status, &code), "call through a killed router: {status} {code}");
        assert!(ended.duration_since(killed) < Duration::from_secs(5), "failed soon after the kill");
    }

    let logs = env.data_dir.path().join("logs");
    let respawned: Vec<Respawned> = captured
        .iter()
        .enumerate()
        .map(|(i, (argv, vars))| Respawned::start(argv, vars, &logs.join(format!("invoke-router-{i}-respawned.log"))))
        .collect();

    // The slots come back by expiry: within the TTL (plus the routers' start-up) the whole limit
    // runs at once.
    let deadline = Duration::from_secs(layout.lease_ttl_secs + 12);
    let throttled = std::sync::atomic::AtomicU32::new(0);
    wait_until(deadline.saturating_sub(killed.elapsed()), "both slots to be free again", || {
        let client = client.clone();
        let throttled = &throttled;
        async move {
            let batch = (0..2).map(|i| {
                let client = client.clone();
                async move { client.invoke().function_name("quick").payload(payload(&json!({"i": i}))).send().await }
            });
            let results = join_all(batch).await;
            for r in &results {
                if let Err(e) = r {
                    let (status, code) = error_of(e);
                    if status == 429 {
                        throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else {
                        // The frontend answers for routers that are still starting.
                        assert!(is_clean_5xx(status, &code), "while routers restart: {status} {code}");
                    }
                }
            }
            results.iter().all(Result::is_ok).then_some(())
        }
    })
    .await;
    eprintln!("slots free {:?} after the kill ({throttled:?} throttled calls before)", killed.elapsed());
    for r in respawned {
        r.stop().await;
    }
    env.stop().await;
}
