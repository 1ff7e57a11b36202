//! One shard's reader: gathers a batch (up to `BatchSize` records, within the batching window) and
//! hands it to its [`Deliverer`], one batch at a time. While a batch is delivered the next
//! `GetRecords` runs (records read ahead are only held in memory: the checkpoint never passes a
//! record that was not processed), so reading and invoking overlap.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::error::{DisplayErrorContext, SdkError};
use aws_sdk_kinesis::operation::get_records::{GetRecordsError, GetRecordsOutput};
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::deliver::Deliverer;
use super::event::{EventContext, Position, Record};
use super::{Poller, backoff, now_ms};

/// The longest a Kinesis call may take before it is abandoned and retried.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The wait between reads of a shard that had nothing new (Kinesis allows five reads per second
/// per shard, shared by every consumer of the stream).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// The synchronous invocation payload limit, with room for the event's envelope.
const MAX_PAYLOAD: usize = 6 * 1024 * 1024 - 4096;
/// Waits after a failed Kinesis call.
const TRANSIENT_BASE: Duration = Duration::from_millis(500);
const TRANSIENT_MAX: Duration = Duration::from_secs(30);
/// The wait before a shard the stream no longer has is given back to the coordinator.
const GONE_PAUSE: Duration = Duration::from_secs(3);

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
pub(super) struct Stopped;

/// The shard is gone from the stream.
struct Gone;

/// Why no iterator was got.
enum IteratorError {
    Gone,
    Transient,
}

/// What one `GetRecords` call gave.
enum Fetched {
    /// This many records were appended (maybe none).
    Records(usize),
    /// The iterator expired: a fresh one is needed.
    Expired,
    Gone,
    /// Throttled, failed or timed out.
    Failed,
}

/// The reading side of a shard.
struct Fetcher {
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
}

pub(super) struct Reader {
    fetcher: Fetcher,
    deliverer: Deliverer,
}

impl Reader {
    pub(super) fn new(poller: Arc<Poller>, shard_id: String, start: Position) -> Self {
        let event = EventContext {
            shard_id: shard_id.clone(),
            event_source_arn: poller.event_source_arn.clone(),
            aws_region: poller.stream.region.clone(),
            invoke_identity_arn: String::new(),
        };
        Self {
            fetcher: Fetcher {
                poller: poller.clone(),
                shard_id: shard_id.clone(),
                read_from: start,
                iterator: None,
                closed: false,
                pending: VecDeque::new(),
            },
            deliverer: Deliverer { poller, shard_id, event, behind_logged: None },
        }
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
        let (fetcher, deliverer) = (&mut self.fetcher, &mut self.deliverer);
        if fresh {
            let now = now_ms();
            deliverer.checkpoint(&fetcher.read_from.checkpoint(now)).await?;
            // A later fresh iterator (after an expiry) must not skip what arrived since `now`.
            if fetcher.read_from == Position::Latest {
                fetcher.iterator = fetcher.latest_iterator().await?;
                fetcher.read_from = Position::AtTimestamp(now);
            }
        }
        let batch_size = fetcher.poller.settings.batch_size;
        let fixed = deliverer.event.fixed_size();
        loop {
            if fetcher.poller.ctx.stop.is_cancelled() {
                return Err(Stopped);
            }
            if fetcher.pending.is_empty() {
                if fetcher.closed {
                    deliverer.checkpoint(&Position::ShardEnd.checkpoint(0)).await?;
                    return Ok(ShardExit::End);
                }
                if let Err(Gone) = fetcher.gather().await? {
                    pause(&fetcher.poller.ctx.stop, GONE_PAUSE).await?;
                    return Ok(ShardExit::Gone);
                }
                continue;
            }
            let batch = fetcher.take_batch(fixed);
            if fetcher.pending.len() < batch_size && !fetcher.closed {
                let (delivered, _) = tokio::join!(deliverer.deliver(batch), fetcher.prefetch());
                delivered?;
            } else {
                deliverer.deliver(batch).await?;
            }
        }
    }
}

impl Fetcher {
    /// Reads until a batch is gathered: `BatchSize` records, the batching window elapsed since
    /// gathering began with a record in hand, or (without a window) any record at all.
    async fn gather(&mut self) -> Result<Result<(), Gone>, Stopped> {
        let settings = &self.poller.settings;
        let (batch_size, window) = (settings.batch_size, settings.window);
        let mut deadline = (!self.pending.is_empty()).then(|| Instant::now() + window);
        let mut failures = 0u32;
        loop {
            if self.closed || self.pending.len() >= batch_size {
                return Ok(Ok(()));
            }
            if let Some(deadline) = deadline
                && (window.is_zero() || Instant::now() >= deadline)
            {
                return Ok(Ok(()));
            }
            if self.iterator.is_none() {
                match self.fresh_iterator().await? {
                    Ok(Some(it)) => self.iterator = Some(it),
                    Ok(None) => self.closed = true,
                    Err(IteratorError::Gone) => return Ok(Err(Gone)),
                    Err(IteratorError::Transient) => {
                        failures += 1;
                        self.pause(backoff(TRANSIENT_BASE, TRANSIENT_MAX, failures)).await?;
                    }
                }
                continue;
            }
            match self.fetch_once().await? {
                Fetched::Records(got) => {
                    failures = 0;
                    if got > 0 {
                        deadline.get_or_insert_with(|| Instant::now() + window);
                    } else if !self.closed {
                        let wait =
                            deadline.map_or(IDLE_POLL, |d| IDLE_POLL.min(d.saturating_duration_since(Instant::now())));
                        self.pause(wait).await?;
                    }
                }
                Fetched::Expired => self.iterator = None,
                Fetched::Gone => return Ok(Err(Gone)),
                Fetched::Failed => {
                    failures += 1;
                    self.pause(backoff(TRANSIENT_BASE, TRANSIENT_MAX, failures)).await?;
                }
            }
        }
    }

    /// One `GetRecords` ahead of need, while a batch is delivered; failures are left to
    /// [`gather`](Self::gather).
    async fn prefetch(&mut self) -> Result<(), Stopped> {
        if self.iterator.is_some()
            && let Fetched::Expired = self.fetch_once().await?
        {
            self.iterator = None;
        }
        Ok(())
    }

    /// One `GetRecords` for what the batch still lacks, its records appended to `pending`.
    async fn fetch_once(&mut self) -> Result<Fetched, Stopped> {
        let Some(iterator) = self.iterator.clone() else { return Ok(Fetched::Failed) };
        let want = self.poller.settings.batch_size.saturating_sub(self.pending.len()).max(1);
        let limit = i32::try_from(want).unwrap_or(10_000);
        let request = self.poller.kinesis.get_records().shard_iterator(iterator).limit(limit).send();
        Ok(match self.call(request).await? {
            Some(Ok(out)) => Fetched::Records(self.absorb(&out)),
            Some(Err(err)) => self.failed(&err).await,
            None => {
                warn!("GetRecords timed out");
                Fetched::Failed
            }
        })
    }

    /// Takes a `GetRecords` answer in; how many records it held.
    fn absorb(&mut self, out: &GetRecordsOutput) -> usize {
        self.iterator = out.next_shard_iterator().map(str::to_owned);
        self.closed = self.iterator.is_none();
        let now = now_ms();
        for r in out.records() {
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
            self.poller.record_age(&self.shard_id, out.millis_behind_latest().unwrap_or(0));
        }
        out.records().len()
    }

    async fn failed<R: std::fmt::Debug>(&self, err: &SdkError<GetRecordsError, R>) -> Fetched {
        let service = err.as_service_error();
        if service.is_some_and(|e| e.is_expired_iterator_exception()) {
            debug!("the shard iterator expired; getting a new one");
            return Fetched::Expired;
        }
        if service.is_some_and(|e| e.is_resource_not_found_exception()) {
            warn!("GetRecords: {}", DisplayErrorContext(err));
            return Fetched::Gone;
        }
        if service.is_some_and(|e| e.is_provisioned_throughput_exceeded_exception()) {
            debug!("GetRecords throttled");
        } else {
            warn!("GetRecords: {}", DisplayErrorContext(err));
            self.poller.report(&format!("PROBLEM: GetRecords: {}", DisplayErrorContext(err))).await;
        }
        Fetched::Failed
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

    /// The next batch from `pending`: at most `BatchSize` records, within the payload limit
    /// (`fixed`: the bytes each record's event adds beside its own fields).
    fn take_batch(&mut self, fixed: usize) -> Vec<Record> {
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

    /// A Kinesis call bounded by [`CALL_TIMEOUT`] (`None` on timeout), abandoned when stopping.
    async fn call<T>(&self, request: impl Future<Output = T>) -> Result<Option<T>, Stopped> {
        tokio::select! {
            out = tokio::time::timeout(CALL_TIMEOUT, request) => Ok(out.ok()),
            _ = self.poller.ctx.stop.cancelled() => Err(Stopped),
        }
    }

    async fn pause(&self, d: Duration) -> Result<(), Stopped> {
        pause(&self.poller.ctx.stop, d).await
    }
}

/// Waits `d`, or less when stopping.
pub(super) async fn pause(stop: &CancellationToken, d: Duration) -> Result<(), Stopped> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = stop.cancelled() => Err(Stopped),
    }
}
