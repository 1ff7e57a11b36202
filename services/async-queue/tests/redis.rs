//! The Redis backend against a real Redis (`LAMINA_TEST_REDIS_URL`, default 127.0.0.1:6379).
//! Each test uses its own key prefix and deletes its keys at the end. Without Redis the tests
//! are skipped, except under `CI`, where they fail.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lamina_async_queue::{Attempt, Event, Queue, QueueConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

/// One test's Redis keys; deleted on drop, also when the test fails.
struct Env {
    url: String,
    prefix: String,
}

impl Env {
    /// `None` (after saying why) when Redis is unreachable outside CI.
    async fn start() -> Option<Self> {
        let url = std::env::var("LAMINA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let reachable = async {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        match tokio::time::timeout(Duration::from_secs(3), reachable).await {
            Ok(Ok(_)) => {}
            outcome => {
                let why = match outcome {
                    Ok(Err(err)) => format!("{err}"),
                    _ => "timed out".to_owned(),
                };
                if std::env::var_os("CI").is_some() {
                    panic!("Redis at {url} is unreachable ({why}) and CI is set");
                }
                eprintln!("skipping: Redis at {url} is unreachable ({why}); set LAMINA_TEST_REDIS_URL");
                return None;
            }
        }
        let prefix = format!("lamina-test:{}", uuid::Uuid::new_v4().simple());
        Some(Self { url, prefix })
    }

    async fn queue(&self, config: QueueConfig) -> Queue {
        Queue::redis(self.url.as_str(), &self.prefix, config).await.expect("connect the queue to Redis")
    }

    /// Consumers of the group over every stream (the shared one and each account's).
    async fn consumers(&self) -> usize {
        let client = redis::Client::open(self.url.as_str()).expect("parse Redis URL");
        let mut conn = client.get_multiplexed_async_connection().await.expect("connect to Redis");
        let mut streams: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}:streams", self.prefix))
            .query_async(&mut conn)
            .await
            .expect("list streams");
        streams.push(format!("{}:events", self.prefix));
        let mut total = 0;
        for stream in streams {
            let list: Vec<redis::Value> = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(&stream)
                .arg("workers")
                .query_async(&mut conn)
                .await
                .expect("list consumers");
            total += list.len();
        }
        total
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let pattern = format!("{}:*", self.prefix);
        let deleted =
            redis::Client::open(self.url.as_str()).and_then(|client| client.get_connection()).and_then(|mut conn| {
                let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn)?;
                if keys.is_empty() { Ok(0) } else { redis::cmd("DEL").arg(&keys).query::<i64>(&mut conn) }
            });
        if let Err(err) = deleted {
            eprintln!("could not delete test keys {pattern}: {err}");
        }
    }
}

/// Short delays so retries happen within a test.
fn config() -> QueueConfig {
    QueueConfig {
        retry_delays: vec![Duration::from_millis(50), Duration::from_millis(50)],
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        max_event_age: Duration::from_secs(60),
        lease: Duration::from_secs(60),
        parallelism: 4,
        ..QueueConfig::default()
    }
}

/// Every attempt a runner saw, with when it started.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<Vec<(Event, Instant)>>>);

impl Runs {
    fn record(&self, event: &Event) {
        self.0.lock().expect("runs lock").push((event.clone(), Instant::now()));
    }
    fn len(&self) -> usize {
        self.0.lock().expect("runs lock").len()
    }
    fn all(&self) -> Vec<(Event, Instant)> {
        self.0.lock().expect("runs lock").clone()
    }
}

/// A worker running in the background; `stop` shuts it down gracefully.
struct Worker {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Worker {
    fn start<F, Fut>(queue: Queue, run: F) -> Self
    where
        F: Fn(Event) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Attempt> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(queue.work(run, shutdown.clone()));
        Self { shutdown, task }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("worker stops within 5 s of shutdown")
            .expect("worker task");
    }
}

/// Polls `condition` until it holds; panics with `what` after [`WAIT`].
async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// After the awaited condition, a short look for anything that should NOT happen (a second run).
async fn settle_time() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

async fn pending(queue: &Queue) -> i64 {
    queue.pending().await.expect("count pending events")
}

async fn enqueue(queue: &Queue, request_id: &str, payload: &str) {
    queue
        .enqueue(request_id, "123456789012", "fn", Some("live"), &Bytes::from(payload.to_owned()))
        .await
        .expect("enqueue");
}

#[tokio::test]
async fn enqueued_event_runs_exactly_once_with_its_payload() {
    let Some(env) = Env::start().await else { return };
    let queue = env.queue(config()).await;
    enqueue(&queue, "req-1", r#"{"hello":"world"}"#).await;
    assert_eq!(pending(&queue).await, 1);

    let runs = Runs::default();
    let recorder = runs.clone();
    let worker = Worker::start(queue.clone(), move |event| {
        recorder.record(&event);
        async { Attempt::Succeeded }
    });
    wait_until("the event ran and is finished", || async { runs.len() == 1 && pending(&queue).await == 0 }).await;
    settle_time().await;
    worker.stop().await;

    let all = runs.all();
    assert_eq!(all.len(), 1, "ran once");
    let event = &all[0].0;
    assert_eq!(event.request_id, "req-1");
    assert_eq!(event.account_id, "123456789012");
    assert_eq!(event.function_name, "fn");
    assert_eq!(event.qualifier.as_deref(), Some("live"));
    assert_eq!(event.payload, r#"{"hello":"world"}"#);
    assert_eq!(event.attempts, 1);
    assert_eq!(env.consumers().await, 0, "a stopped worker removes its consumer");
}

#[tokio::test]
async fn function_error_is_retried_per_retry_delays_then_dropped() {
    let Some(env) = Env::start().await else { return };
    let queue = env.queue(config()).await;
    let runs = Runs::default();
    let recorder = runs.clone();
    let worker = Worker::start(queue.clone(), move |event| {
        recorder.record(&event);
        async { Attempt::FunctionError }
    });
    enqueue(&queue, "req-err", "{}").await;
    wait_until("three attempts ran and the event is gone", || async { runs.len() == 3 && pending(&queue).await == 0 })
        .await;
    settle_time().await;
    worker.stop().await;

    let all = runs.all();
    assert_eq!(all.len(), 3, "first attempt plus one retry per delay");
    assert!(all.iter().all(|(event, _)| event.request_id == "req-err"), "retries keep the request id");
    assert_eq!(all.iter().map(|(event, _)| event.attempts).collect::<Vec<_>>(), [1, 2, 3]);
    for pair in all.windows(2) {
        assert!(pair[1].1 - pair[0].1 >= Duration::from_millis(50), "retry waited its delay");
    }
}

#[tokio::test]
async fn throttled_event_is_retried_with_backoff() {
    let Some(env) = Env::start().await else { return };
    let queue = env.queue(config()).await;
    let runs = Runs::default();
    let recorder = runs.clone();
    let worker = Worker::start(queue.clone(), move |event| {
        recorder.record(&event);
        let outcome = if event.attempts < 3 { Attempt::Throttled } else { Attempt::Succeeded };
        async move { outcome }
    });
    enqueue(&queue, "req-throttled", "{}").await;
    wait_until("the third attempt succeeded", || async { runs.len() == 3 && pending(&queue).await == 0 }).await;
    settle_time().await;
    worker.stop().await;

    let all = runs.all();
    assert_eq!(all.len(), 3);
    assert_eq!(all.iter().map(|(event, _)| event.attempts).collect::<Vec<_>>(), [1, 2, 3]);
    // min_backoff 50 ms, doubling.
    assert!(all[1].1 - all[0].1 >= Duration::from_millis(50));
    assert!(all[2].1 - all[1].1 >= Duration::from_millis(100));
}

#[tokio::test]
async fn event_of_a_dead_worker_is_taken_over_after_the_lease() {
    let Some(env) = Env::start().await else { return };
    let config = QueueConfig { lease: Duration::from_millis(500), ..config() };

    // The first worker lives on its own runtime, so killing that runtime kills the worker, its
    // running event and its connections, as a crashed process would.
    let doomed = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let started = Arc::new(tokio::sync::Notify::new());
    let (url, prefix, doomed_config, signal) = (env.url.clone(), env.prefix.clone(), config.clone(), started.clone());
    doomed.spawn(async move {
        let queue = Queue::redis(url.as_str(), &prefix, doomed_config).await.expect("connect the queue to Redis");
        let run = move |_event: Event| {
            signal.notify_one();
            std::future::pending::<Attempt>()
        };
        queue.work(run, CancellationToken::new()).await;
    });
    let queue = env.queue(config).await;
    enqueue(&queue, "req-orphan", r#"{"n":1}"#).await;
    tokio::time::timeout(WAIT, started.notified()).await.expect("the first worker took the event");
    let died_at = Instant::now();
    doomed.shutdown_background();

    let runs = Runs::default();
    let recorder = runs.clone();
    let worker = Worker::start(queue.clone(), move |event| {
        recorder.record(&event);
        async { Attempt::Succeeded }
    });
    wait_until("the second worker ran the event", || async { runs.len() == 1 && pending(&queue).await == 0 }).await;
    settle_time().await;
    worker.stop().await;

    let all = runs.all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0.request_id, "req-orphan");
    assert_eq!(all[0].0.payload, r#"{"n":1}"#);
    assert!(all[0].1 - died_at < WAIT);
}

#[tokio::test]
async fn a_late_outcome_from_a_worker_whose_lease_ran_out_is_ignored() {
    let Some(env) = Env::start().await else { return };
    let config = QueueConfig { lease: Duration::from_millis(300), ..config() };
    let queue = env.queue(config.clone()).await;
    enqueue(&queue, "req-slow", "{}").await;

    // The slow worker stalls (its only thread blocked, so it cannot renew the lease either)
    // past its lease and then reports a function error, which would schedule a retry were its
    // outcome not ignored. With its one slot busy it reads nothing more, so the other worker is
    // the one that takes the event over.
    let stalled = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let slow_runs = Runs::default();
    let (url, prefix, recorder) = (env.url.clone(), env.prefix.clone(), slow_runs.clone());
    let slow_config = QueueConfig { parallelism: 1, ..config.clone() };
    let stop_slow = CancellationToken::new();
    let slow = stalled.spawn({
        let stop = stop_slow.clone();
        async move {
            let queue = Queue::redis(url.as_str(), &prefix, slow_config).await.expect("connect the queue to Redis");
            let run = move |event: Event| {
                recorder.record(&event);
                async {
                    std::thread::sleep(Duration::from_millis(1500));
                    Attempt::FunctionError
                }
            };
            queue.work(run, stop).await;
        }
    });
    wait_until("the slow worker took the event", || async { slow_runs.len() == 1 }).await;

    let runs = Runs::default();
    let recorder = runs.clone();
    let fast = Worker::start(env.queue(config).await, move |event| {
        recorder.record(&event);
        async { Attempt::Succeeded }
    });
    wait_until("the other worker ran the event", || async { runs.len() == 1 && pending(&queue).await == 0 }).await;
    stop_slow.cancel();
    tokio::time::timeout(WAIT, slow).await.expect("the slow worker stopped").expect("slow worker task");
    stalled.shutdown_background();
    settle_time().await;
    fast.stop().await;

    assert_eq!(runs.len(), 1);
    assert_eq!(slow_runs.len(), 1);
    assert_eq!(pending(&queue).await, 0, "the slow worker's retry was not scheduled");
}

#[tokio::test]
async fn a_running_event_keeps_its_lease_while_its_worker_lives() {
    let Some(env) = Env::start().await else { return };
    // The run lasts five leases; renewals keep the other worker from taking it over.
    let config = QueueConfig { lease: Duration::from_millis(300), ..config() };
    let queue = env.queue(config.clone()).await;
    let runs = Runs::default();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let recorder = runs.clone();
        workers.push(Worker::start(env.queue(config.clone()).await, move |event| {
            recorder.record(&event);
            async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                Attempt::Succeeded
            }
        }));
    }
    enqueue(&queue, "req-long", "{}").await;
    wait_until("the event finished", || async { runs.len() >= 1 && pending(&queue).await == 0 }).await;
    settle_time().await;
    for worker in workers {
        worker.stop().await;
    }
    assert_eq!(runs.len(), 1, "run once, not taken over while running");
}

#[tokio::test]
async fn event_of_a_dead_worker_is_taken_over_within_seconds_despite_a_long_lease() {
    let Some(env) = Env::start().await else { return };
    // A lease far longer than the test: only the dead worker's missing heartbeat can explain a
    // takeover within the test's wait.
    let config = QueueConfig { lease: Duration::from_secs(600), ..config() };
    let doomed = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let started = Arc::new(tokio::sync::Notify::new());
    let (url, prefix, doomed_config, signal) = (env.url.clone(), env.prefix.clone(), config.clone(), started.clone());
    doomed.spawn(async move {
        let queue = Queue::redis(url.as_str(), &prefix, doomed_config).await.expect("connect the queue to Redis");
        let run = move |_event: Event| {
            signal.notify_one();
            std::future::pending::<Attempt>()
        };
        queue.work(run, CancellationToken::new()).await;
    });
    let queue = env.queue(config).await;
    enqueue(&queue, "req-orphan", "{}").await;
    tokio::time::timeout(WAIT, started.notified()).await.expect("the first worker took the event");
    let died_at = Instant::now();
    doomed.shutdown_background();

    let runs = Runs::default();
    let recorder = runs.clone();
    let worker = Worker::start(queue.clone(), move |event| {
        recorder.record(&event);
        async { Attempt::Succeeded }
    });
    wait_until("the second worker ran the event", || async { runs.len() == 1 && pending(&queue).await == 0 }).await;
    worker.stop().await;
    let all = runs.all();
    assert_eq!(all.len(), 1);
    let delay = all[0].1 - died_at;
    assert!(delay < Duration::from_secs(8), "taken over after {delay:?}");
}

#[tokio::test]
async fn a_worker_does_not_start_its_own_running_event_again_when_the_lease_runs_out() {
    let Some(env) = Env::start().await else { return };
    let queue = env.queue(QueueConfig { lease: Duration::from_millis(100), ..config() }).await;
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let runs = Runs::default();
    let (gate, recorder) = (release.clone(), runs.clone());
    let worker = Worker::start(queue.clone(), move |event| {
        recorder.record(&event);
        let gate = gate.clone();
        async move {
            let _ = gate.acquire().await;
            Attempt::Succeeded
        }
    });
    enqueue(&queue, "req-long", "{}").await;
    wait_until("the event started", || async { runs.len() == 1 }).await;
    // Several leases pass while it runs; the worker keeps scanning for expired leases meanwhile.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(runs.len(), 1, "not started twice");
    release.add_permits(1);
    wait_until("the event finished", || async { pending(&queue).await == 0 }).await;
    worker.stop().await;
    assert_eq!(runs.len(), 1);
}

#[tokio::test]
async fn two_workers_never_run_one_event_twice() {
    let Some(env) = Env::start().await else { return };
    let queue = env.queue(config()).await;
    const EVENTS: usize = 40;
    for i in 0..EVENTS {
        enqueue(&queue, &format!("req-{i}"), &format!(r#"{{"i":{i}}}"#)).await;
    }
    let running = Arc::new(Mutex::new(HashSet::new()));
    let overlaps = Arc::new(Mutex::new(Vec::new()));
    let runs = Runs::default();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (running, overlaps, recorder) = (running.clone(), overlaps.clone(), runs.clone());
        let run = move |event: Event| {
            recorder.record(&event);
            if !running.lock().expect("lock").insert(event.request_id.clone()) {
                overlaps.lock().expect("lock").push(event.request_id.clone());
            }
            let running = running.clone();
            async move {
                // Some work, so that both workers hold events at once.
                tokio::time::sleep(Duration::from_millis(20)).await;
                running.lock().expect("lock").remove(&event.request_id);
                Attempt::Succeeded
            }
        };
        workers.push(Worker::start(env.queue(config()).await, run));
    }
    wait_until("every event ran", || async { runs.len() >= EVENTS && pending(&queue).await == 0 }).await;
    settle_time().await;
    for worker in workers {
        worker.stop().await;
    }

    assert!(overlaps.lock().expect("lock").is_empty(), "events run twice at once: {overlaps:?}");
    let ids: Vec<String> = runs.all().into_iter().map(|(event, _)| event.request_id).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), EVENTS, "each event ran once");
    assert_eq!(unique.len(), EVENTS);
}

#[tokio::test]
async fn pending_counts_waiting_running_and_delayed_events() {
    let Some(env) = Env::start().await else { return };
    let config = QueueConfig { retry_delays: vec![Duration::from_secs(3600)], ..config() };
    let queue = env.queue(config).await;
    assert_eq!(pending(&queue).await, 0);
    for id in ["a", "b", "c"] {
        enqueue(&queue, id, "{}").await;
    }
    assert_eq!(pending(&queue).await, 3, "waiting events count");

    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let runs = Runs::default();
    let (gate, recorder) = (release.clone(), runs.clone());
    let worker = Worker::start(queue.clone(), move |event| {
        recorder.record(&event);
        let gate = gate.clone();
        async move {
            let _ = gate.acquire().await;
            // "a" fails and waits an hour for its retry; the others are done.
            if event.request_id == "a" { Attempt::FunctionError } else { Attempt::Succeeded }
        }
    });
    wait_until("all three are running", || async { runs.len() == 3 }).await;
    assert_eq!(pending(&queue).await, 3, "running events count");
    release.add_permits(3);
    wait_until("only the delayed retry is left", || async { pending(&queue).await == 1 }).await;
    settle_time().await;
    assert_eq!(pending(&queue).await, 1, "a delayed retry counts");
    assert_eq!(runs.len(), 3);
    worker.stop().await;
}

#[tokio::test]
async fn events_older_than_max_event_age_are_dropped() {
    let Some(env) = Env::start().await else { return };
    let max_age = Duration::from_millis(400);
    let config = QueueConfig { max_event_age: max_age, max_backoff: Duration::from_millis(50), ..config() };
    let queue = env.queue(config).await;
    let runs = Runs::default();
    let recorder = runs.clone();
    let worker = Worker::start(queue.clone(), move |event| {
        recorder.record(&event);
        async { Attempt::Throttled }
    });
    let enqueued = Instant::now();
    enqueue(&queue, "req-old", "{}").await;
    wait_until("the throttled event aged out", || async { runs.len() > 0 && pending(&queue).await == 0 }).await;
    let dropped_after = enqueued.elapsed();
    let attempts = runs.len();
    settle_time().await;
    worker.stop().await;

    assert!(attempts >= 2, "retried while young enough (ran {attempts} times)");
    assert!(dropped_after >= max_age, "kept until it was {max_age:?} old, dropped after {dropped_after:?}");
    assert_eq!(runs.len(), attempts, "no attempt after it was dropped");
}

#[tokio::test]
async fn accounts_are_served_in_turn_not_in_arrival_order() {
    let Some(env) = Env::start().await else { return };
    let queue = env.queue(QueueConfig { parallelism: 2, ..config() }).await;
    let payload = Bytes::from_static(b"{}");
    for i in 0..100 {
        queue.enqueue(&format!("flood-{i}"), "111111111111", "fn", None, &payload).await.expect("enqueue");
    }
    queue.enqueue("lone", "222222222222", "fn", None, &payload).await.expect("enqueue");
    let runs = Runs::default();
    let recorder = runs.clone();
    let worker = Worker::start(queue.clone(), move |event| {
        recorder.record(&event);
        async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Attempt::Succeeded
        }
    });
    wait_until("the lone account's event ran", || async { runs.all().iter().any(|(e, _)| e.request_id == "lone") })
        .await;
    worker.stop().await;
    let position = runs.all().iter().position(|(e, _)| e.request_id == "lone").expect("ran");
    // Arrival order would put it after the 100 others.
    assert!(position < 4, "the other account's event ran as number {position}");
}

#[tokio::test]
async fn a_restarted_worker_takes_over_its_previous_lifes_events_at_once() {
    let Some(env) = Env::start().await else { return };
    let state = tempfile::tempdir().expect("state dir");
    // A lease far longer than the test, and a heartbeat (5 s) that would outlive the wait below:
    // only the state directory explains the takeover.
    let config = QueueConfig { lease: Duration::from_secs(600), state_dir: Some(state.path().into()), ..config() };
    let doomed = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let started = Arc::new(tokio::sync::Notify::new());
    let (url, prefix, doomed_config, signal) = (env.url.clone(), env.prefix.clone(), config.clone(), started.clone());
    doomed.spawn(async move {
        let queue = Queue::redis(url.as_str(), &prefix, doomed_config).await.expect("connect the queue to Redis");
        let run = move |_event: Event| {
            signal.notify_one();
            std::future::pending::<Attempt>()
        };
        queue.work(run, CancellationToken::new()).await;
    });
    let queue = env.queue(config).await;
    enqueue(&queue, "req-restarted", "{}").await;
    tokio::time::timeout(WAIT, started.notified()).await.expect("the first worker took the event");
    let died_at = Instant::now();
    doomed.shutdown_background();

    let runs = Runs::default();
    let recorder = runs.clone();
    let worker = Worker::start(queue.clone(), move |event| {
        recorder.record(&event);
        async { Attempt::Succeeded }
    });
    wait_until("the successor ran the event", || async { runs.len() == 1 && pending(&queue).await == 0 }).await;
    worker.stop().await;
    let delay = runs.all()[0].1 - died_at;
    assert!(delay < Duration::from_millis(2500), "taken over after {delay:?}");
}

/// A schedule tick fired again after a crash enqueues the same request id: it is stored once.
#[tokio::test]
async fn an_event_enqueued_twice_with_one_request_id_is_stored_once() {
    let Some(env) = Env::start().await else { return };
    let queue = env.queue(config()).await;
    let payload = Bytes::from_static(b"{}");
    queue.enqueue("same-id", "111111111111", "f", None, &payload).await.expect("first enqueue");
    queue.enqueue("same-id", "111111111111", "f", None, &payload).await.expect("second enqueue is accepted");
    queue.enqueue("other-id", "111111111111", "f", None, &payload).await.expect("another event");
    assert_eq!(queue.pending().await.expect("count"), 2, "the repeated request id is stored once");
}
