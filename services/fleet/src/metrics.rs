//! Metric names of the Redis round trips (recorded through the `metrics` facade), and the
//! connection wrapper that times them.

use std::time::Instant;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// Histogram: seconds one Redis command, script or pipeline took to be answered, label `client`
/// (`leases`, `registry`, `invalidations`, `queue`). Blocking reads are not timed.
pub const REDIS_DURATION_SECONDS: &str = "lamina_redis_command_duration_seconds";
/// Counter: Redis commands that failed (error reply, timeout, connection lost), label `client`.
pub const REDIS_ERRORS_TOTAL: &str = "lamina_redis_errors_total";

/// Registers descriptions of the metrics above with the installed recorder.
pub fn describe() {
    metrics::describe_histogram!(
        REDIS_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time for Redis to answer one command, script or pipeline, by client"
    );
    metrics::describe_counter!(REDIS_ERRORS_TOTAL, "Redis commands that failed, by client");
}

/// A connection whose every round trip is timed under `client`'s label. Cheap to clone when `C` is.
#[derive(Clone)]
pub struct Timed<C> {
    conn: C,
    client: &'static str,
}

impl<C> Timed<C> {
    /// Times `conn`'s round trips as `client` (one of the fixed names above).
    pub fn new(conn: C, client: &'static str) -> Self {
        // Shown from the start (at 0), so a rate of errors is 0 rather than absent.
        metrics::counter!(REDIS_ERRORS_TOTAL, "client" => client).increment(0);
        Self { conn, client }
    }
}

fn record(client: &'static str, started: Instant, ok: bool) {
    metrics::histogram!(REDIS_DURATION_SECONDS, "client" => client).record(started.elapsed().as_secs_f64());
    if !ok {
        metrics::counter!(REDIS_ERRORS_TOTAL, "client" => client).increment(1);
    }
}

impl<C: ConnectionLike + Send> ConnectionLike for Timed<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let client = self.client;
        let answer = self.conn.req_packed_command(cmd);
        Box::pin(async move {
            let started = Instant::now();
            let out = answer.await;
            record(client, started, out.is_ok());
            out
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let client = self.client;
        let answer = self.conn.req_packed_commands(pipeline, offset, count);
        Box::pin(async move {
            let started = Instant::now();
            let out = answer.await;
            record(client, started, out.is_ok());
            out
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}
