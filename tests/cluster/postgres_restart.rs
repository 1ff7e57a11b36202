//! Postgres going away and coming back under a running cluster.
//!
//! The test runs its own PostgreSQL server (`initdb` + `pg_ctl` as the `postgres` user, on a free
//! port, in a temp dir): the machine's shared server is never touched.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_lambda::Client;
use lamina_tests::{ClusterOptions, wait_until};
use reqwest::Method;
use serde_json::json;
use tokio::time::Instant;

use crate::{create_python, error_of, in_ci, is_clean_5xx, payload, serial, start};

const ECHO: &str = r#"def handler(event, context):
    return event
"#;

/// How long a call may take to fail while Postgres is down: the metadata pool gives up acquiring a
/// connection after 10 s (`services/metadata/src/store/mod.rs`), plus some slack.
const DOWN_BOUND: Duration = Duration::from_secs(12);

/// A PostgreSQL server of this test alone, run as the `postgres` user (initdb refuses root).
struct PrivatePostgres {
    bin: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    running: bool,
}

impl PrivatePostgres {
    /// Initialises a cluster in a temp dir and starts it on a free port; `None` (skip) when
    /// `initdb`/`pg_ctl` are not installed, outside CI.
    async fn start() -> Option<Self> {
        let Some(bin) = Self::bin_dir() else {
            assert!(!in_ci(), "initdb and pg_ctl are required under CI");
            eprintln!("skipping: initdb/pg_ctl not found; CI would fail here");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let chown = std::process::Command::new("chown").arg("postgres:").arg(dir.path()).status().expect("chown");
        assert!(chown.success(), "chown the temp dir to postgres: {chown}");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut pg = Self { bin, port, dir, running: false };
        pg.as_postgres("initdb", |c| {
            c.arg("-D").arg(pg.data()).args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        });
        pg.run().await;
        Some(pg)
    }

    /// The directory holding `initdb` and `pg_ctl`: the newest `/usr/lib/postgresql/*/bin`, else PATH.
    fn bin_dir() -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .collect();
        dirs.sort_by_key(|d| {
            d.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
        });
        let path = std::env::var_os("PATH").unwrap_or_default();
        dirs.into_iter()
            .rev()
            .chain(std::env::split_paths(&path))
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `postgres://postgres@127.0.0.1:<port>`, the base [`ClusterOptions::postgres_base`] takes.
    fn base(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// Runs `tool` of the server's bin dir as the `postgres` user and checks that it succeeded.
    fn as_postgres(&self, tool: &str, args: impl FnOnce(&mut std::process::Command)) {
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
        args(&mut cmd);
        // pg_ctl -w blocks until the server is up or down: keep the runtime's other tasks going.
        let out = tokio::task::block_in_place(|| cmd.output()).unwrap_or_else(|e| panic!("run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} failed ({}):\n{}{}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
        );
    }

    /// Starts the server on its port (`pg_ctl -w` returns once it accepts connections).
    async fn run(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let (data, log) = (self.data(), self.dir.path().join("postgres.log"));
        self.as_postgres("pg_ctl", |c| {
            c.arg("-D").arg(&data).arg("-l").arg(&log).arg("-o").arg(&options).args(["-w", "-t", "30", "start"]);
        });
        self.running = true;
        let url = format!("{}/postgres", self.base());
        wait_until(Duration::from_secs(10), "the private postgres to answer", || {
            let url = url.clone();
            async move {
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect(&url).await.ok()?;
                sqlx::query_scalar::<_, i32>("select 1").fetch_one(&mut conn).await.ok()
            }
        })
        .await;
    }

    /// Stops the server with `mode` (`fast`: clean shutdown; `immediate`: a crash, recovered from
    /// the WAL at the next start); `pg_ctl -w` returns once it has exited.
    fn stop(&mut self, mode: &str) {
        if std::mem::take(&mut self.running) {
            let data = self.data();
            self.as_postgres("pg_ctl", |c| {
                c.arg("-D").arg(&data).args(["-m", mode, "-w", "-t", "30", "stop"]);
            });
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            // Never leave a server behind, even when the test panicked.
            let _ = std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

/// Runs `call` and checks that it fails with a clean 5xx within [`DOWN_BOUND`]; returns
/// `(status, code, elapsed)`.
async fn fails_cleanly<T, E, Fut>(what: &str, call: Fut) -> (u16, String, Duration)
where
    T: std::fmt::Debug,
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::fmt::Debug,
    Fut: std::future::Future<
            Output = Result<T, aws_sdk_lambda::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
        >,
{
    let started = Instant::now();
    let Ok(answer) = tokio::time::timeout(Duration::from_secs(30), call).await else {
        panic!("{what} while Postgres is down hangs for more than 30 s");
    };
    let elapsed = started.elapsed();
    let err = match answer {
        Ok(ok) => panic!("{what} cannot succeed while Postgres is down: {ok:?}"),
        Err(err) => err,
    };
    let (status, code) = error_of(&err);
    eprintln!("{what} while Postgres is down: {status} {code} in {elapsed:?}");
    assert!(is_clean_5xx(status, &code), "{what} while Postgres is down: {status} {code}");
    assert!(elapsed < DOWN_BOUND, "{what} answered within {DOWN_BOUND:?}: took {elapsed:?}");
    (status, code, elapsed)
}

/// Invokes `name` with `tag`; `Ok` with the echoed tag checked.
async fn echo(client: &Client, name: &str, tag: &str) -> Result<(), (u16, String)> {
    match client.invoke().function_name(name).payload(payload(&json!({"tag": tag}))).send().await {
        Ok(out) => {
            assert_eq!(out.function_error(), None, "{name} ran without error");
            let body: serde_json::Value =
                serde_json::from_slice(out.payload().map(|b| b.as_ref()).unwrap_or_default()).expect("JSON");
            assert_eq!(body, json!({"tag": tag}));
            Ok(())
        }
        Err(err) => Err(error_of(&err)),
    }
}

/// Postgres dies under a running cluster (a crash: `pg_ctl -m immediate`). While it is down, the
/// control plane (GetFunction, ListFunctions, CreateFunction, the admin API), a request signed
/// with a key no frontend has cached, and a sync Invoke of a function no process has cached answer
/// a clean 5xx within [`DOWN_BOUND`]. A warm Invoke answers too, without hanging: it runs from the
/// caches (the frontend's secrets, 30 s; the invoke target, 1 s: `read_cache::TTL`) while they
/// hold, and fails like a cold one after. Postgres comes back on the same port: without restarting
/// Lamina every call succeeds again, and what was written before the outage is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_under_a_running_cluster() {
    let _serial = serial().await;
    let Some(mut pg) = PrivatePostgres::start().await else { return };
    let layout = ClusterOptions { postgres_base: Some(pg.base()), ..ClusterOptions::default() };
    let Some(env) = start(&layout).await else { return };
    let tenant = env.tenant().await;
    let client = env.lambda(&tenant);
    // A tenant whose key no frontend has looked up yet.
    let fresh = env.lambda(&env.tenant().await);
    create_python(&client, "warm", ECHO, 10).send().await.expect("create warm");
    create_python(&client, "cold", ECHO, 10).send().await.expect("create cold");
    echo(&client, "warm", "before").await.expect("warm runs with Postgres up");

    let down = Instant::now();
    pg.stop("immediate");
    eprintln!("postgres stopped in {:?}", down.elapsed());

    // The warm function at once, while the caches may still hold it (the invoke target only for
    // 1 s after it was read, so whether it runs depends on timing: both answers are right).
    let warm_invoke = |when: &'static str| {
        let client = client.clone();
        async move {
            let started = Instant::now();
            let answer = tokio::time::timeout(DOWN_BOUND, echo(&client, "warm", "down"))
                .await
                .unwrap_or_else(|_| panic!("a warm Invoke {when} answers within {DOWN_BOUND:?}"));
            eprintln!("warm Invoke {when} while Postgres is down: {answer:?} in {:?}", started.elapsed());
            if let Err((status, code)) = &answer {
                assert!(is_clean_5xx(*status, code), "warm Invoke {when} while Postgres is down: {status} {code}");
            }
        }
    };
    warm_invoke("at once").await;

    // The calls that need the database, concurrently (each may wait out the pool's acquire timeout).
    let admin = async {
        let started = Instant::now();
        let (status, body) = tokio::time::timeout(Duration::from_secs(30), env.admin(Method::GET, "/accounts", None))
            .await
            .expect("the admin API answers while Postgres is down");
        eprintln!("admin ListAccounts while Postgres is down: {status} {body} in {:?}", started.elapsed());
        assert!((500..600).contains(&status), "admin ListAccounts while Postgres is down: {status} {body}");
        assert!(started.elapsed() < DOWN_BOUND, "admin ListAccounts answered within {DOWN_BOUND:?}");
    };
    tokio::join!(
        fails_cleanly("GetFunction", client.get_function().function_name("cold").send()),
        fails_cleanly("ListFunctions", client.list_functions().send()),
        fails_cleanly("CreateFunction", create_python(&client, "during", ECHO, 10).send()),
        fails_cleanly(
            "cold Invoke",
            client.invoke().function_name("cold").payload(payload(&json!({"tag": "down"}))).send()
        ),
        fails_cleanly("ListFunctions with an uncached key", fresh.list_functions().send()),
        admin,
    );
    // Later in the outage (the invoke target's cache has expired by now), and a second round of a
    // control-plane call: the failures do not pile up or get slower.
    tokio::join!(
        warm_invoke("later"),
        fails_cleanly("GetFunction (again)", client.get_function().function_name("warm").send()),
    );

    pg.run().await;
    let back = Instant::now();
    eprintln!("postgres back after {:?} down", down.elapsed());
    wait_until(Duration::from_secs(20), "the control plane to answer again", || {
        let client = client.clone();
        async move {
            match client.list_functions().send().await {
                Ok(out) => Some(out),
                Err(err) => {
                    let (status, code) = error_of(&err);
                    assert!(is_clean_5xx(status, &code), "ListFunctions while Postgres comes back: {status} {code}");
                    None
                }
            }
        }
    })
    .await;
    eprintln!("ListFunctions succeeds {:?} after Postgres came back", back.elapsed());

    // Everything written before the outage is there, and nothing from the failed CreateFunction.
    let listed = client.list_functions().send().await.expect("ListFunctions");
    let mut names: Vec<&str> = listed.functions().iter().filter_map(|f| f.function_name()).collect();
    names.sort_unstable();
    assert_eq!(names, ["cold", "warm"], "the functions created before the outage, and only them");
    let got = client.get_function().function_name("cold").send().await.expect("GetFunction cold");
    assert_eq!(got.configuration().and_then(|c| c.handler()), Some("lambda_function.handler"));
    echo(&client, "cold", "after").await.expect("the cold function runs once Postgres is back");
    echo(&client, "warm", "after").await.expect("the warm function still runs");
    fresh.list_functions().send().await.expect("the key uncached during the outage works");
    create_python(&client, "during", ECHO, 10).send().await.expect("CreateFunction once Postgres is back");
    echo(&client, "during", "after").await.expect("a function created after the outage runs");
    eprintln!("everything works {:?} after Postgres came back", back.elapsed());

    env.stop().await;
    pg.stop("fast");
}
