//! One shard's reader: gathers a batch (up to `BatchSize` records, within the batching window),
//! invokes the function with it, and checkpoints the batch's last record before reading past it.
//! A failing batch is retried (whole, bisected, or from its first failed item) and blocks only this
//! shard until it succeeds or the mapping's retry or age limit lets it be skipped.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::destination::{self, Condition, Discarded};
use super::event::{self, EventContext, ItemFailures, Position, Record};
use super::{Poller, backoff, metrics_names, now_ms};
use crate::invoker::BatchResult;

/// The longest a Kinesis call may take before it is abandoned and retried.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The wait between reads of a shard that had nothing new (Kinesis allows five reads per second
/// per shard, shared by every consumer of the stream).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How long a batch in flight may finish after the poller is told to stop (its success is then
/// checkpointed instead of being delivered again by the next poller).
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The synchronous invocation payload limit, with room for the event's envelope.
const MAX_PAYLOAD: usize = 6 * 1024 * 1024 - 4096;
/// Retry waits after a function error.
const RETRY_BASE: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// Waits after a throttled invocation or a failed Kinesis or database call.
const TRANSIENT_BASE: Duration = Duration::from_millis(500);
const TRANSIENT_MAX: Duration = Duration::from_secs(30);

/// `LastProcessingResult` while a batch fails.
const FUNCTION_CALL_FAILED: &str = "PROBLEM: Function call failed";

/// Records of a batch still to deliver, with what happened to them so far.
struct Part {
    records: Vec<Record>,
    /// Retries spent (bisecting spends none).
    retries: u32,
    /// Invocations that reached the function.
    invocations: u32,
    /// The last invocation failed in the function.
    function_error: bool,
}

/// Why a reader returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ShardExit {
    /// The shard is closed and all its records are done (`SHARD_END` checkpointed).
    End,
    /// The stream no longer has this shard.
    Gone,
    /// The poller is stopping.
    Stopped,
}

/// The poller was told to stop.
struct Stopped;

/// How reading more records went.
enum Read {
    /// Records were added, or the shard turned out closed.
    Done,
    Gone,
}

/// Why no iterator was got.
enum IteratorError {
    Gone,
    Transient,
}

pub(super) struct Reader {
    poller: Arc<Poller>,
    shard_id: String,
    /// Where the next fresh iterator starts: after the last record read (not necessarily
    /// delivered yet), or the starting position before any.
    read_from: Position,
    iterator: Option<String>,
    /// No record will follow those already read.
    closed: bool,
    /// Read, not yet delivered, in shard order.
    pending: VecDeque<Record>,
    event: EventContext,
}

impl Reader {
    pub(super) fn new(poller: Arc<Poller>, shard_id: String, start: Position) -> Self {
        let event = EventContext {
            shard_id: shard_id.clone(),
            event_source_arn: poller.event_source_arn.clone(),
            aws_region: poller.stream.region.clone(),
            invoke_identity_arn: String::new(),
        };
        Self { poller, shard_id, read_from: start, iterator: None, closed: false, pending: VecDeque::new(), event }
    }

    /// Reads and delivers the shard until it ends or the poller stops. `fresh`: the shard has no
    /// checkpoint yet; its starting position is stored first.
    pub(super) async fn run(mut self, fresh: bool) -> ShardExit {
        match self.read_loop(fresh).await {
            Ok(exit) => exit,
            Err(Stopped) => ShardExit::Stopped,
        }
    }

    async fn read_loop(&mut self, fresh: bool) -> Result<ShardExit, Stopped> {
        if fresh {
            let now = now_ms();
            let checkpoint = self.read_from.checkpoint(now);
            self.checkpoint(&checkpoint).await?;
            // A later fresh iterator (after an expiry) must not skip what arrived since `now`.
            if self.read_from == Position::Latest {
                self.iterator = self.latest_iterator().await?;
                self.read_from = Position::AtTimestamp(now);
            }
        }
        loop {
            if self.poller.ctx.stop.is_cancelled() {
                return Err(Stopped);
            }
            if self.pending.is_empty() {
                if self.closed {
                    self.checkpoint(&Position::ShardEnd.checkpoint(0)).await?;
                    return Ok(ShardExit::End);
                }
                if let Read::Gone = self.read().await? {
                    return Ok(ShardExit::Gone);
                }
                continue;
            }
            let batch = self.take_batch();
            self.deliver(batch).await?;
        }
    }

    /// Reads until a batch is gathered: `BatchSize` records, the batching window elapsed since
    /// the first one, or (without a window) any record at all.
    async fn read(&mut self) -> Result<Read, Stopped> {
        let settings = &self.poller.settings;
        let (batch_size, window) = (settings.batch_size, settings.window);
        let mut deadline: Option<Instant> = None;
        let mut failures = 0u32;
        loop {
            if self.closed || self.pending.len() >= batch_size {
                return Ok(Read::Done);
            }
            let iterator = match self.iterator.clone() {
                Some(it) => it,
                None => match self.fresh_iterator().await? {
                    Ok(Some(it)) => {
                        self.iterator = Some(it.clone());
                        it
                    }
                    Ok(None) => {
                        self.closed = true;
                        continue;
                    }
                    Err(IteratorError::Gone) => return Ok(Read::Gone),
                    Err(IteratorError::Transient) => {
                        failures += 1;
                        self.pause(backoff(TRANSIENT_BASE, TRANSIENT_MAX, failures)).await?;
                        continue;
                    }
                },
            };
            let limit = i32::try_from(batch_size - self.pending.len()).unwrap_or(10_000);
            let request = self.poller.kinesis.get_records().shard_iterator(iterator).limit(limit).send();
            let answer = match self.call(request).await? {
                Some(Ok(out)) => out,
                Some(Err(err)) => {
                    let service = err.as_service_error();
                    if service.is_some_and(|e| e.is_expired_iterator_exception()) {
                        debug!("the shard iterator expired; getting a new one");
                        self.iterator = None;
                        continue;
                    }
                    if service.is_some_and(|e| e.is_resource_not_found_exception()) {
                        warn!("GetRecords: {}", DisplayErrorContext(&err));
                        self.pause(TRANSIENT_MAX / 10).await?;
                        return Ok(Read::Gone);
                    }
                    failures += 1;
                    if service.is_some_and(|e| e.is_provisioned_throughput_exceeded_exception()) {
                        debug!("GetRecords throttled");
                    } else {
                        warn!("GetRecords: {}", DisplayErrorContext(&err));
                        self.poller.report(&format!("PROBLEM: GetRecords: {}", DisplayErrorContext(&err))).await;
                    }
                    self.pause(backoff(TRANSIENT_BASE, TRANSIENT_MAX, failures)).await?;
                    continue;
                }
                None => {
                    failures += 1;
                    warn!("GetRecords timed out");
                    self.pause(backoff(TRANSIENT_BASE, TRANSIENT_MAX, failures)).await?;
                    continue;
                }
            };
            failures = 0;
            self.iterator = answer.next_shard_iterator().map(str::to_owned);
            self.closed = self.iterator.is_none();
            let got = answer.records().len();
            let now = now_ms();
            for r in answer.records() {
                self.pending.push_back(Record {
                    sequence_number: r.sequence_number().to_owned(),
                    partition_key: r.partition_key().unwrap_or_default().to_owned(),
                    data: r.data().as_ref().to_vec(),
                    arrival_ms: r.approximate_arrival_timestamp().and_then(|t| t.to_millis().ok()).unwrap_or(now),
                });
            }
            if let Some(last) = self.pending.back() {
                self.read_from = Position::After(last.sequence_number.clone());
            }
            if self.pending.is_empty() {
                // Caught up: the shard's age is how far behind the newest record this read is.
                self.poller.record_age(&self.shard_id, answer.millis_behind_latest().unwrap_or(0));
            }
            if got > 0 && deadline.is_none() {
                deadline = Some(Instant::now() + window);
            }
            if self.closed || self.pending.len() >= batch_size {
                return Ok(Read::Done);
            }
            if let Some(deadline) = deadline {
                if window.is_zero() || Instant::now() >= deadline {
                    return Ok(Read::Done);
                }
                if got == 0 {
                    self.pause(IDLE_POLL.min(deadline - Instant::now())).await?;
                }
            } else {
                self.pause(IDLE_POLL).await?;
            }
        }
    }

    /// A new iterator from `read_from`: `Ok(None)` when the shard has nothing more (closed).
    async fn fresh_iterator(&mut self) -> Result<Result<Option<String>, IteratorError>, Stopped> {
        let (kind, seq, at) = match &self.read_from {
            Position::After(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone()), None),
            Position::TrimHorizon => (ShardIteratorType::TrimHorizon, None, None),
            Position::Latest => (ShardIteratorType::Latest, None, None),
            Position::AtTimestamp(ms) => (ShardIteratorType::AtTimestamp, None, Some(DateTime::from_millis(*ms))),
            Position::ShardEnd => return Ok(Ok(None)),
        };
        let request = self
            .poller
            .kinesis
            .get_shard_iterator()
            .stream_name(&self.poller.stream.name)
            .shard_id(&self.shard_id)
            .shard_iterator_type(kind)
            .set_starting_sequence_number(seq)
            .set_timestamp(at)
            .send();
        match self.call(request).await? {
            Some(Ok(out)) => match out.shard_iterator() {
                Some(it) => Ok(Ok(Some(it.to_owned()))),
                None => Ok(Ok(None)),
            },
            Some(Err(err)) => {
                warn!("GetShardIterator: {}", DisplayErrorContext(&err));
                if err.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) {
                    self.pause(TRANSIENT_MAX / 10).await?;
                    return Ok(Err(IteratorError::Gone));
                }
                self.poller.report(&format!("PROBLEM: GetShardIterator: {}", DisplayErrorContext(&err))).await;
                Ok(Err(IteratorError::Transient))
            }
            None => {
                warn!("GetShardIterator timed out");
                Ok(Err(IteratorError::Transient))
            }
        }
    }

    /// A `LATEST` iterator (the first read of a fresh shard); `None` when it could not be got
    /// (the read loop then gets one from `read_from`).
    async fn latest_iterator(&self) -> Result<Option<String>, Stopped> {
        let request = self
            .poller
            .kinesis
            .get_shard_iterator()
            .stream_name(&self.poller.stream.name)
            .shard_id(&self.shard_id)
            .shard_iterator_type(ShardIteratorType::Latest)
            .send();
        Ok(match self.call(request).await? {
            Some(Ok(out)) => out.shard_iterator().map(str::to_owned),
            _ => None,
        })
    }

    /// The next batch from `pending`: at most `BatchSize` records, within the payload limit.
    fn take_batch(&mut self) -> Vec<Record> {
        let fixed = self.event.fixed_size();
        let mut size = 16;
        let mut batch = Vec::new();
        while let Some(r) = self.pending.front() {
            let s = r.event_size(fixed);
            if batch.len() >= self.poller.settings.batch_size || (!batch.is_empty() && size + s > MAX_PAYLOAD) {
                break;
            }
            size += s;
            batch.extend(self.pending.pop_front());
        }
        batch
    }

    /// Delivers `batch` until every record of it succeeded or was skipped, checkpointing as parts
    /// of it are done.
    async fn deliver(&mut self, batch: Vec<Record>) -> Result<(), Stopped> {
        let settings = self.poller.settings.clone();
        // Parts still to deliver, in shard order.
        let mut parts = VecDeque::from([Part { records: batch, retries: 0, invocations: 0, function_error: false }]);
        let mut transient = 0u32;
        while let Some(mut part) = parts.pop_front() {
            if self.poller.ctx.stop.is_cancelled() {
                return Err(Stopped);
            }
            if let Some(max_age) = settings.max_record_age {
                let now = now_ms();
                let max_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
                // Arrival times grow along a shard, so the expired records are a prefix.
                let expired = part.records.iter().take_while(|r| now - r.arrival_ms > max_ms).count();
                if expired > 0 {
                    let rest = part.records.split_off(expired);
                    self.skip(&part, Condition::RecordAgeExceeded).await?;
                    part.records = rest;
                }
                if part.records.is_empty() {
                    continue;
                }
            }
            let result = self.invoke(&part.records).await?;
            part.invocations += 1;
            match result {
                BatchResult::Succeeded(payload) => {
                    transient = 0;
                    part.function_error = false;
                    let failed = if settings.report_item_failures {
                        event::item_failures(&payload, &part.records)
                    } else {
                        ItemFailures::None
                    };
                    match failed {
                        ItemFailures::None => self.done(&part.records).await?,
                        ItemFailures::From(index) => {
                            let failed = part.records.split_off(index);
                            self.done(&part.records).await?;
                            info!(
                                from = %failed[0].sequence_number,
                                records = failed.len(),
                                "the function reported failed items; retrying from the first"
                            );
                            self.poller.report(FUNCTION_CALL_FAILED).await;
                            part.records = failed;
                            part.function_error = true;
                            self.retry(part, false, &mut parts).await?;
                        }
                        ItemFailures::Invalid => {
                            warn!(
                                "the function's batchItemFailures names no record of the batch; the whole batch failed"
                            );
                            self.poller.report(FUNCTION_CALL_FAILED).await;
                            part.function_error = true;
                            self.retry(part, settings.bisect, &mut parts).await?;
                        }
                    }
                }
                BatchResult::FunctionError(payload) => {
                    transient = 0;
                    info!(
                        first = %part.records[0].sequence_number,
                        records = part.records.len(),
                        retries = part.retries,
                        error = %String::from_utf8_lossy(&payload[..payload.len().min(512)]),
                        "the function failed the batch"
                    );
                    self.poller.report(FUNCTION_CALL_FAILED).await;
                    part.function_error = true;
                    self.retry(part, settings.bisect, &mut parts).await?;
                }
                // Throttles and service errors never reached the function: they do not count as
                // retries; the records' age still bounds them.
                BatchResult::Retryable(reason) => {
                    part.invocations -= 1;
                    transient += 1;
                    debug!("invocation throttled or unavailable: {reason}");
                    self.poller.report(&format!("PROBLEM: {reason}")).await;
                    self.pause(backoff(TRANSIENT_BASE, TRANSIENT_MAX, transient)).await?;
                    parts.push_front(part);
                }
                BatchResult::Failed(reason) => {
                    part.invocations -= 1;
                    transient += 1;
                    warn!("the function cannot be invoked: {reason}");
                    self.poller.report(&format!("PROBLEM: {reason}")).await;
                    self.pause(backoff(TRANSIENT_BASE, TRANSIENT_MAX, transient + 3)).await?;
                    parts.push_front(part);
                }
            }
        }
        Ok(())
    }

    /// Schedules another try of a failed part: bisected when asked and possible (which spends no
    /// retry, as in Lambda), else whole after a backoff; skipped once `MaximumRetryAttempts` is spent.
    async fn retry(&mut self, mut part: Part, bisect: bool, parts: &mut VecDeque<Part>) -> Result<(), Stopped> {
        if bisect && part.records.len() > 1 {
            let second = part.records.split_off(part.records.len() / 2);
            parts.push_front(Part { records: second, ..part });
            parts.push_front(part);
            return Ok(());
        }
        if self.poller.settings.max_retries.is_some_and(|max| part.retries >= max) {
            return self.skip(&part, Condition::RetryAttemptsExhausted).await;
        }
        self.pause(backoff(RETRY_BASE, RETRY_MAX, part.retries + 1)).await?;
        part.retries += 1;
        parts.push_front(part);
        Ok(())
    }

    /// Gives up on a part's records: logged, counted, sent to the on-failure destination if there
    /// is one, recorded in `LastProcessingResult`, checkpointed past.
    async fn skip(&mut self, part: &Part, condition: Condition) -> Result<(), Stopped> {
        let records = &part.records;
        let (Some(first), Some(last)) = (records.first(), records.last()) else { return Ok(()) };
        warn!(
            first = %first.sequence_number,
            last = %last.sequence_number,
            records = records.len(),
            condition = condition.as_str(),
            "discarding records"
        );
        metrics::counter!(metrics_names::RECORDS_SKIPPED_TOTAL, "source" => "kinesis").increment(records.len() as u64);
        let ctx = &self.poller.ctx;
        if let Some(target) = destination::on_failure(ctx.mapping.destination_config.as_ref()) {
            let discarded = Discarded {
                records,
                condition,
                function_arn: &ctx.mapping.function_arn,
                shard_id: &self.shard_id,
                stream_arn: &self.poller.event_source_arn,
                invocations: part.invocations,
                function_error: part.function_error,
            };
            destination::send(&target, &discarded, &ctx.stop).await;
        }
        self.poller.report(FUNCTION_CALL_FAILED).await;
        self.checkpoint(&last.sequence_number).await
    }

    /// `records` succeeded: checkpointed, counted.
    async fn done(&mut self, records: &[Record]) -> Result<(), Stopped> {
        let Some(last) = records.last() else { return Ok(()) };
        self.checkpoint(&last.sequence_number).await?;
        metrics::counter!(metrics_names::RECORDS_TOTAL, "source" => "kinesis").increment(records.len() as u64);
        self.poller.report("OK").await;
        Ok(())
    }

    /// Invokes the function with `records`; a call in flight when the poller stops may finish
    /// within [`STOP_GRACE`].
    async fn invoke(&mut self, records: &[Record]) -> Result<BatchResult, Stopped> {
        if self.event.invoke_identity_arn.is_empty() {
            self.event.invoke_identity_arn = self.poller.role().await;
        }
        if let Some(last) = records.last() {
            let age = now_ms() - last.arrival_ms;
            self.poller.record_age(&self.shard_id, age);
            debug!(records = records.len(), iterator_age_ms = age, "invoking with a batch");
        }
        let payload = match serde_json::to_vec(&event::event(&self.event, records)) {
            Ok(p) => Bytes::from(p),
            Err(err) => return Ok(BatchResult::Failed(format!("encode the event: {err}"))),
        };
        let ctx = &self.poller.ctx;
        let call = ctx.invoker.invoke(&ctx.account_id, &ctx.mapping.function_arn, payload);
        tokio::pin!(call);
        tokio::select! {
            result = &mut call => Ok(result),
            _ = ctx.stop.cancelled() => match tokio::time::timeout(STOP_GRACE, call).await {
                Ok(result) => Ok(result),
                Err(_) => Err(Stopped),
            },
        }
    }

    /// Stores `checkpoint` for this shard, retrying until it is stored: reading on without it
    /// could lose records across a restart.
    async fn checkpoint(&mut self, checkpoint: &str) -> Result<(), Stopped> {
        let ctx = &self.poller.ctx;
        let mut failures = 0u32;
        loop {
            match ctx.client.put_checkpoint(&ctx.mapping.uuid, &self.shard_id, checkpoint).await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    failures += 1;
                    warn!("store the shard's checkpoint: {err}");
                    self.pause(backoff(TRANSIENT_BASE, TRANSIENT_MAX, failures)).await?;
                }
            }
        }
    }

    /// A Kinesis call bounded by [`CALL_TIMEOUT`] (`None` on timeout), abandoned when stopping.
    async fn call<T>(&self, request: impl Future<Output = T>) -> Result<Option<T>, Stopped> {
        tokio::select! {
            out = tokio::time::timeout(CALL_TIMEOUT, request) => Ok(out.ok()),
            _ = self.poller.ctx.stop.cancelled() => Err(Stopped),
        }
    }

    /// Waits `d`, or less when stopping.
    async fn pause(&self, d: Duration) -> Result<(), Stopped> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = self.poller.ctx.stop.cancelled() => Err(Stopped),
        }
    }
}
