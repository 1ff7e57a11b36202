//! The Kinesis poller: one reader per shard of the mapping's stream (`shard`), each delivering
//! its shard's records in order, one batch at a time (`deliver`), with the checkpoint of the last
//! record done kept in Lamina's database. A failing batch blocks only its shard; discarded batches
//! (retry or age limit) are logged, counted and, with `DestinationConfig.OnFailure`, described on an
//! SQS queue (`destination`).
//!
//! Resharding: a shard's children start only once every parent is finished (read to its end and
//! checkpointed as such), so a partition key's records stay in order across splits and merges.
//! Shards are re-listed periodically and whenever a shard finishes.
//!
//! Checkpoints (one per shard, see `event::Position`) are written before a shard's first read
//! (its starting position, `LATEST` as the moment reading started), after every batch that
//! succeeded or was skipped, and as `SHARD_END` when a closed shard is finished.

mod deliver;
mod destination;
mod event;
pub(crate) mod role;
mod shard;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_kinesis::error::DisplayErrorContext;
use tokio::task::JoinSet;
use tracing::{Instrument as _, debug, info, warn};

use lamina_common::names::FunctionRef;
use lamina_common::telemetry::{Metric, MetricKey, MetricSample};

use self::event::{Position, StreamArn};
use self::shard::ShardExit;
use super::PollContext;
use crate::mappings::EventSourceMapping;

/// How often shards are listed again while none finishes (new shards without parents appear only
/// when a stream is created; children are looked for as soon as a parent finishes).
const LIST_INTERVAL: Duration = Duration::from_secs(10);
/// The longest wait after failing to list the stream's shards.
const LIST_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Metric names.
pub(crate) mod metrics_names {
    /// Records delivered to the function and processed (`source` label).
    pub const RECORDS_TOTAL: &str = "lamina_esm_records_total";
    /// Records skipped after exhausting `MaximumRetryAttempts` or `MaximumRecordAgeInSeconds`.
    pub const RECORDS_SKIPPED_TOTAL: &str = "lamina_esm_records_skipped_total";
    /// The mapping's `IteratorAge`: the age of the last record of the latest batch, the largest
    /// over the mapping's shards (`source`, `mapping` labels).
    pub const ITERATOR_AGE_MS: &str = "lamina_esm_iterator_age_ms";
}

/// Reads the mapping's stream and invokes its function with batches until `ctx.stop`.
pub async fn run(ctx: PollContext) -> anyhow::Result<()> {
    let arn = ctx.mapping.event_source_arn.clone().unwrap_or_default();
    let span = tracing::info_span!("kinesis_poller", mapping = %ctx.mapping.uuid, stream = %arn);
    async move {
        let stream = StreamArn::parse(&arn).with_context(|| format!("{arn:?} is not a Kinesis stream ARN"))?;
        let poller = Arc::new(Poller {
            age_metric: ctx.telemetry.as_ref().and_then(|_| iterator_age_key(&ctx)),
            settings: Settings::of(&ctx.mapping),
            kinesis: crate::aws::kinesis().await,
            stream,
            event_source_arn: arn,
            ctx,
            role: tokio::sync::Mutex::new(None),
            result: Mutex::new(String::new()),
            ages: Mutex::new(HashMap::new()),
        });
        poller.coordinate().await;
        Ok(())
    }
    .instrument(span)
    .await
}

/// The mapping's settings, with the API's defaults and `-1` (infinite) resolved.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub batch_size: usize,
    pub window: Duration,
    pub start: Position,
    pub max_retries: Option<u32>,
    pub max_record_age: Option<Duration>,
    pub bisect: bool,
    pub report_item_failures: bool,
}

impl Settings {
    fn of(m: &EventSourceMapping) -> Self {
        let start = match m.starting_position.as_deref() {
            Some("TRIM_HORIZON") => Position::TrimHorizon,
            Some("AT_TIMESTAMP") => {
                Position::AtTimestamp(m.starting_position_timestamp.map_or(0, |s| (s * 1000.0) as i64))
            }
            _ => Position::Latest,
        };
        Self {
            batch_size: usize::try_from(m.batch_size).ok().filter(|n| *n > 0).map_or(100, |n| n.min(10_000)),
            window: Duration::from_secs(u64::try_from(m.maximum_batching_window_in_seconds).unwrap_or(0)),
            start,
            max_retries: m.maximum_retry_attempts.and_then(|n| u32::try_from(n).ok()),
            max_record_age: m
                .maximum_record_age_in_seconds
                .and_then(|n| u64::try_from(n).ok())
                .map(Duration::from_secs),
            bisect: m.bisect_batch_on_function_error.unwrap_or(false),
            report_item_failures: m.function_response_types.iter().any(|t| t == "ReportBatchItemFailures"),
        }
    }
}

/// One mapping's poller: what its shard readers share.
pub(crate) struct Poller {
    pub ctx: PollContext,
    pub settings: Settings,
    pub kinesis: aws_sdk_kinesis::Client,
    pub stream: StreamArn,
    pub event_source_arn: String,
    /// The function's role once known (`invokeIdentityArn`).
    role: tokio::sync::Mutex<Option<String>>,
    /// The `LastProcessingResult` last written, so unchanged results are not written again.
    result: Mutex<String>,
    /// The latest iterator age per shard (ms), whose maximum is the mapping's gauge.
    ages: Mutex<HashMap<String, i64>>,
    /// The key of the mapping's `IteratorAge` samples, when function telemetry is on.
    age_metric: Option<MetricKey>,
}

/// The `IteratorAge` key of the mapping's function, as the mapping names it (`Resource` carries
/// its qualifier); `None` when the name does not parse (its invocations fail anyway).
fn iterator_age_key(ctx: &PollContext) -> Option<MetricKey> {
    let r = FunctionRef::parse(&ctx.mapping.function_arn, "FunctionName").ok()?;
    let resource = match &r.qualifier {
        Some(q) => format!("{}:{q}", r.name),
        None => r.name.clone(),
    };
    Some(MetricKey {
        account_id: r.account_id.unwrap_or_else(|| ctx.account_id.clone()),
        function_name: r.name,
        resource,
        executed_version: String::new(),
        metric: Metric::IteratorAge,
    })
}

/// A listed shard.
#[derive(Debug, Clone)]
struct ShardInfo {
    id: String,
    parents: Vec<String>,
    /// Has an ending sequence number: no record will be added.
    closed: bool,
}

/// What the coordinator knows of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShardState {
    Running,
    /// Finished; `processed` when its records were read by this mapping (its children then start
    /// from their oldest record), false when it was passed over (`LATEST` on a closed shard).
    Done {
        processed: bool,
    },
}

impl Poller {
    /// Lists shards and runs one reader per shard whose parents are done, until `stop`, then
    /// waits for the readers to finish.
    async fn coordinate(self: &Arc<Self>) {
        let stop = self.ctx.stop.clone();
        let mut states: HashMap<String, ShardState> = HashMap::new();
        let mut readers: JoinSet<(String, ShardExit)> = JoinSet::new();
        let mut tasks: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut failures = 0u32;
        loop {
            let wait = match self.list_shards().await {
                Ok(listing) => {
                    failures = 0;
                    self.schedule(&listing, &mut states, &mut readers, &mut tasks).await;
                    LIST_INTERVAL
                }
                Err(err) => {
                    failures += 1;
                    warn!("list the stream's shards: {err:#}");
                    self.report(&format!("PROBLEM: {err:#}")).await;
                    backoff(Duration::from_millis(500), LIST_BACKOFF_MAX, failures)
                }
            };
            // Wait for the next listing, or list at once when a shard finished (its children are
            // listed already).
            tokio::select! {
                _ = stop.cancelled() => {
                    while let Some(done) = readers.join_next().await {
                        if let Err(err) = done {
                            warn!("a shard reader failed: {err}");
                        }
                    }
                    return;
                }
                _ = tokio::time::sleep(wait) => {}
                Some(done) = readers.join_next_with_id(), if !readers.is_empty() => match done {
                    Ok((id, (shard, ShardExit::End))) => {
                        tasks.remove(&id);
                        info!(shard = %shard, "shard finished");
                        states.insert(shard.clone(), ShardState::Done { processed: true });
                        self.forget_age(&shard);
                    }
                    // The shard is looked at again on the next listing (restarted if still
                    // listed, forgotten otherwise).
                    Ok((id, (shard, ShardExit::Gone))) => {
                        tasks.remove(&id);
                        states.remove(&shard);
                        self.forget_age(&shard);
                    }
                    Ok((id, (_, ShardExit::Stopped))) => {
                        tasks.remove(&id);
                    }
                    Err(err) => {
                        // A panic: the next listing starts the shard again from its checkpoint.
                        warn!("a shard reader failed: {err}");
                        if let Some(shard) = tasks.remove(&err.id()) {
                            states.remove(&shard);
                        }
                    }
                },
            }
        }
    }

    /// Starts readers for the listed shards that may start.
    async fn schedule(
        self: &Arc<Self>,
        listing: &[ShardInfo],
        states: &mut HashMap<String, ShardState>,
        readers: &mut JoinSet<(String, ShardExit)>,
        tasks: &mut HashMap<tokio::task::Id, String>,
    ) {
        let listed: HashSet<&str> = listing.iter().map(|s| s.id.as_str()).collect();
        // A shard passed over may let its children start in the same pass.
        let mut changed = true;
        while changed {
            changed = false;
            for shard in listing {
                if states.contains_key(&shard.id) || self.ctx.stop.is_cancelled() {
                    continue;
                }
                // A parent no longer listed has expired: nothing of it is left to read first.
                let blocked = shard.parents.iter().any(|p| match states.get(p) {
                    Some(ShardState::Running) => true,
                    Some(ShardState::Done { .. }) => false,
                    None => listed.contains(p.as_str()),
                });
                if blocked {
                    continue;
                }
                let checkpoint = match self.ctx.client.get_checkpoint(&self.ctx.mapping.uuid, &shard.id).await {
                    Ok(c) => c,
                    Err(err) => {
                        warn!(shard = %shard.id, "read the shard's checkpoint: {err}");
                        continue;
                    }
                };
                let (start, fresh) = match checkpoint.as_deref().map(|c| (c, Position::parse(c))) {
                    Some((_, Some(Position::ShardEnd))) => {
                        states.insert(shard.id.clone(), ShardState::Done { processed: true });
                        changed = true;
                        continue;
                    }
                    Some((_, Some(position))) => (position, false),
                    Some((c, None)) => {
                        warn!(shard = %shard.id, checkpoint = c, "unreadable checkpoint; the shard starts at the mapping's starting position");
                        (self.settings.start.clone(), true)
                    }
                    None => {
                        let parent_read =
                            shard.parents.iter().any(|p| states.get(p) == Some(&ShardState::Done { processed: true }));
                        match &self.settings.start {
                            // Records of a child follow those of the parents this mapping read.
                            _ if parent_read => (Position::TrimHorizon, true),
                            // Nothing will arrive in a closed shard: LATEST has nothing to read there.
                            Position::Latest if shard.closed => {
                                states.insert(shard.id.clone(), ShardState::Done { processed: false });
                                changed = true;
                                continue;
                            }
                            start => (start.clone(), true),
                        }
                    }
                };
                debug!(shard = %shard.id, ?start, fresh, "starting shard reader");
                states.insert(shard.id.clone(), ShardState::Running);
                let span = tracing::info_span!("shard", shard = %shard.id);
                let reader = shard::Reader::new(self.clone(), shard.id.clone(), start);
                let id = shard.id.clone();
                let task = readers.spawn(async move { (id, reader.run(fresh).await) }.instrument(span));
                tasks.insert(task.id(), shard.id.clone());
            }
        }
    }

    /// Every shard of the stream (following `NextToken`).
    async fn list_shards(&self) -> anyhow::Result<Vec<ShardInfo>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = match token.take() {
                // A page after the first names the stream only through its token.
                Some(t) => self.kinesis.list_shards().next_token(t),
                None => self.kinesis.list_shards().stream_name(&self.stream.name),
            };
            let page = tokio::time::timeout(shard::CALL_TIMEOUT, request.send())
                .await
                .context("ListShards timed out")?
                .map_err(|e| anyhow::anyhow!("ListShards {}: {}", self.stream.name, DisplayErrorContext(e)))?;
            out.extend(page.shards().iter().map(|s| ShardInfo {
                id: s.shard_id().to_owned(),
                parents:
                    s.parent_shard_id().into_iter().chain(s.adjacent_parent_shard_id()).map(str::to_owned).collect(),
                closed: s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some(),
            }));
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// Sets `LastProcessingResult` when it changes.
    pub(crate) async fn report(&self, result: &str) {
        {
            let Ok(mut last) = self.result.lock() else { return };
            if *last == result {
                return;
            }
            result.clone_into(&mut last);
        }
        if let Err(err) = self.ctx.client.set_processing_result(&self.ctx.mapping.uuid, result).await {
            debug!("set the mapping's processing result: {err}");
            if let Ok(mut last) = self.result.lock() {
                last.clear();
            }
        }
    }

    /// The function's role, looked up once it exists.
    pub(crate) async fn role(&self) -> String {
        let mut role = self.role.lock().await;
        if let Some(r) = role.as_ref() {
            return r.clone();
        }
        match self.ctx.client.function_role(&self.ctx.account_id, &self.ctx.mapping.function_arn).await {
            Ok(Some(r)) => {
                *role = Some(r.clone());
                r
            }
            Ok(None) => String::new(),
            Err(err) => {
                debug!("look up the function's role: {err}");
                String::new()
            }
        }
    }

    /// Records a shard's iterator age (a batch is being invoked): the function's `IteratorAge`
    /// sample, and the mapping's gauge set to the largest over its shards.
    pub(crate) fn record_age(&self, shard: &str, age_ms: i64) {
        if let (Some(sink), Some(key)) = (&self.ctx.telemetry, &self.age_metric) {
            sink.metric(MetricSample { key: key.clone(), timestamp_ms: now_ms(), value: age_ms.max(0) as f64 });
        }
        let Ok(mut ages) = self.ages.lock() else { return };
        ages.insert(shard.to_owned(), age_ms.max(0));
        let max = ages.values().copied().max().unwrap_or(0);
        metrics::gauge!(metrics_names::ITERATOR_AGE_MS, "source" => "kinesis", "mapping" => self.ctx.mapping.uuid.clone())
            .set(max as f64);
    }

    fn forget_age(&self, shard: &str) {
        if let Ok(mut ages) = self.ages.lock() {
            ages.remove(shard);
        }
    }
}

/// `base · 2^(attempt-1)`, at most `max`.
pub(crate) fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(max)
}

/// Now in epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_resolve_defaults_and_infinity() {
        let mut m = EventSourceMapping { batch_size: 0, maximum_retry_attempts: Some(-1), ..Default::default() };
        let s = Settings::of(&m);
        assert_eq!(s.batch_size, 100);
        assert_eq!(s.max_retries, None);
        assert_eq!(s.start, Position::Latest);
        m.starting_position = Some("AT_TIMESTAMP".into());
        m.starting_position_timestamp = Some(1_700_000_000.5);
        m.maximum_retry_attempts = Some(2);
        m.maximum_record_age_in_seconds = Some(60);
        m.function_response_types = vec!["ReportBatchItemFailures".into()];
        let s = Settings::of(&m);
        assert_eq!(s.start, Position::AtTimestamp(1_700_000_000_500));
        assert_eq!(s.max_retries, Some(2));
        assert_eq!(s.max_record_age, Some(Duration::from_secs(60)));
        assert!(s.report_item_failures);
    }

    #[test]
    fn backoff_grows_to_its_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        assert_eq!(backoff(base, max, 1), base);
        assert_eq!(backoff(base, max, 3), Duration::from_millis(400));
        assert_eq!(backoff(base, max, 40), max);
    }
}
