//! Delivering one batch of a shard: invocations, retries (whole, bisected, or from the first
//! failed item), discards once the mapping's limits are reached, and the checkpoint after each
//! part of the batch that is done.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::destination::{self, Condition, Discarded};
use super::event::{self, EventContext, ItemFailures, Record};
use super::shard::{Stopped, pause};
use super::{Poller, backoff, metrics_names, now_ms};
use crate::invoker::BatchResult;

/// How long a batch in flight may finish after the poller is told to stop (its success is then
/// checkpointed instead of being delivered again by the next poller).
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Retry waits after a function error.
const RETRY_BASE: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// Waits after a throttled invocation or a failed database call.
const TRANSIENT_BASE: Duration = Duration::from_millis(500);
const TRANSIENT_MAX: Duration = Duration::from_secs(30);
/// An iterator age (ms) logged as falling behind, at most every [`BEHIND_LOG_EVERY`].
const BEHIND_MS: i64 = 60_000;
const BEHIND_LOG_EVERY: Duration = Duration::from_secs(60);
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

/// Delivers a shard's batches and keeps its checkpoint.
pub(super) struct Deliverer {
    pub poller: Arc<Poller>,
    pub shard_id: String,
    pub event: EventContext,
    /// When the shard was last logged as falling behind.
    pub behind_logged: Option<Instant>,
}

impl Deliverer {
    /// Delivers `batch` until every record of it succeeded or was skipped, checkpointing as parts
    /// of it are done.
    pub(super) async fn deliver(&mut self, batch: Vec<Record>) -> Result<(), Stopped> {
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
                    self.pause_for(backoff(TRANSIENT_BASE, TRANSIENT_MAX, transient)).await?;
                    parts.push_front(part);
                }
                BatchResult::Failed(reason) => {
                    part.invocations -= 1;
                    transient += 1;
                    warn!("the function cannot be invoked: {reason}");
                    self.poller.report(&format!("PROBLEM: {reason}")).await;
                    self.pause_for(backoff(TRANSIENT_BASE, TRANSIENT_MAX, transient + 3)).await?;
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
        self.pause_for(backoff(RETRY_BASE, RETRY_MAX, part.retries + 1)).await?;
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
            if age >= BEHIND_MS && self.behind_logged.is_none_or(|t| t.elapsed() >= BEHIND_LOG_EVERY) {
                info!(iterator_age_ms = age, "the shard's reading is behind its newest records");
                self.behind_logged = Some(Instant::now());
            }
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
    pub(super) async fn checkpoint(&mut self, checkpoint: &str) -> Result<(), Stopped> {
        let ctx = &self.poller.ctx;
        let mut failures = 0u32;
        loop {
            match ctx.client.put_checkpoint(&ctx.mapping.uuid, &self.shard_id, checkpoint).await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    failures += 1;
                    warn!("store the shard's checkpoint: {err}");
                    self.pause_for(backoff(TRANSIENT_BASE, TRANSIENT_MAX, failures)).await?;
                }
            }
        }
    }

    async fn pause_for(&self, d: Duration) -> Result<(), Stopped> {
        pause(&self.poller.ctx.stop, d).await
    }
}
