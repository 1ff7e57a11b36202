//! The SQS poller: long-polls the mapping's queue, gathers up to `BatchSize` messages within
//! `MaximumBatchingWindowInSeconds`, invokes the function synchronously with the `aws:sqs` event and
//! deletes what succeeded (everything on success; with `ReportBatchItemFailures`, everything the
//! function did not name). A failed message is left alone: it becomes visible again when the queue's
//! visibility timeout ends, and the queue's redrive policy (if any) takes it from there. The one
//! visibility change the poller makes is for messages it received but never handed to the function
//! because it was told to stop (mapping disabled, updated or deleted, lease lost, shutdown): those
//! are made visible at once, so the next poller need not wait out the visibility timeout.
//!
//! One worker always polls; up to [`MAX_WORKERS`] poll side by side while batches come back full (a
//! backlog), as Lambda adds pollers to a busy queue. A large batch is filled by several
//! `ReceiveMessage` calls in parallel.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName,
};
use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::PollContext;
use crate::aws::{QueueArn, queue_url};
use crate::invoker::BatchResult;

/// `ReceiveMessage` returns at most this many messages per call.
const MAX_RECEIVE: usize = 10;
/// The longest long poll SQS allows.
const LONG_POLL_SECS: u64 = 20;
/// `DeleteMessageBatch` takes at most this many entries per call.
const MAX_DELETE: usize = 10;
/// A synchronous invocation's payload limit; a larger batch is invoked in several parts.
pub(super) const MAX_PAYLOAD: usize = 6 * 1024 * 1024;
/// Pollers of one queue when it has a backlog.
const MAX_WORKERS: usize = 5;
/// `ReceiveMessage` calls in flight at once while one large batch fills.
const MAX_PARALLEL_RECEIVES: usize = 8;

/// `LastProcessingResult` after a batch the function handled.
pub(super) const RESULT_OK: &str = "OK";
/// `LastProcessingResult` after a batch the function failed (or could not be invoked with).
pub(super) const RESULT_FUNCTION_FAILED: &str = "PROBLEM: Function call failed";

/// Reads the mapping's queue and invokes its function with batches until `ctx.stop`.
pub async fn run(ctx: PollContext) -> anyhow::Result<()> {
    let source = ctx.mapping.event_source_arn.clone().unwrap_or_default();
    let arn = QueueArn::parse(&source)
        .ok_or_else(|| anyhow::anyhow!("mapping {}: {source:?} is not an SQS queue ARN", ctx.mapping.uuid))?;
    let sqs = crate::aws::sqs().await;
    let results = ProcessingResults::new(&ctx);
    let Some(url) = resolve_url(&ctx, &sqs, &arn, &results).await else { return Ok(()) };
    let (backlog, _) = watch::channel(false);
    let poller = Arc::new(Poller {
        batch_size: usize::try_from(ctx.mapping.batch_size).unwrap_or(1).clamp(1, 10_000),
        window: Duration::from_secs(u64::try_from(ctx.mapping.maximum_batching_window_in_seconds).unwrap_or(0)),
        report_failures: ctx.mapping.function_response_types.iter().any(|t| t == "ReportBatchItemFailures"),
        source,
        region: arn.region,
        url,
        sqs,
        results,
        backlog,
        ctx,
    });
    tracing::info!(mapping = %poller.ctx.mapping.uuid, queue = %poller.source, "SQS poller started");
    let mut workers = tokio::task::JoinSet::new();
    for index in 0..MAX_WORKERS {
        workers.spawn(poller.clone().worker(index));
    }
    while let Some(done) = workers.join_next().await {
        if let Err(err) = done {
            tracing::error!(mapping = %poller.ctx.mapping.uuid, "SQS poller worker failed: {err}");
        }
    }
    tracing::info!(mapping = %poller.ctx.mapping.uuid, "SQS poller stopped");
    Ok(())
}

/// Asks the queue's URL until it is known (the queue or its server may not be there yet); `None`
/// once stopped.
async fn resolve_url(
    ctx: &PollContext,
    sqs: &aws_sdk_sqs::Client,
    arn: &QueueArn,
    results: &ProcessingResults,
) -> Option<String> {
    let mut backoff = Backoff::default();
    loop {
        if ctx.stop.is_cancelled() {
            return None;
        }
        let attempt = tokio::select! {
            _ = ctx.stop.cancelled() => return None,
            url = queue_url(sqs, arn) => url,
        };
        match attempt {
            Ok(url) => return Some(url),
            Err(err) => {
                tracing::warn!(mapping = %ctx.mapping.uuid, "SQS queue unreachable: {err:#}");
                results.set(RESULT_UNREACHABLE).await;
                if !sleep_or_stop(&ctx.stop, backoff.next()).await {
                    return None;
                }
            }
        }
    }
}

/// `LastProcessingResult` while the source cannot be read.
pub(super) const RESULT_UNREACHABLE: &str =
    "PROBLEM: Connection error. Please check your event source connection configuration.";

struct Poller {
    ctx: PollContext,
    sqs: aws_sdk_sqs::Client,
    url: String,
    /// The queue's ARN, as records name it.
    source: String,
    /// The queue's region, as records name it.
    region: String,
    batch_size: usize,
    window: Duration,
    report_failures: bool,
    results: ProcessingResults,
    /// Whether the last batch came back full: extra workers poll only then.
    backlog: watch::Sender<bool>,
}

/// What a batch's outcome asks of its worker.
enum Next {
    /// Poll again at once.
    Poll,
    /// Wait before polling again (throttled, or the function cannot be invoked).
    Backoff,
}

/// One message as the function sees it, with what deleting it takes.
struct Received {
    message_id: String,
    receipt_handle: String,
    /// The record's JSON.
    json: Vec<u8>,
}

impl Poller {
    async fn worker(self: Arc<Self>, index: usize) {
        let mut receive_backoff = Backoff::default();
        let mut invoke_backoff = Backoff::default();
        let mut backlog = self.backlog.subscribe();
        loop {
            if index > 0 {
                tokio::select! {
                    _ = self.ctx.stop.cancelled() => return,
                    waited = backlog.wait_for(|b| *b) => if waited.is_err() { return },
                }
            }
            let Some(batch) = self.gather(&mut receive_backoff).await else { return };
            let full = batch.len() >= self.batch_size;
            self.backlog.send_if_modified(|b| std::mem::replace(b, full) != full);
            match self.process(batch).await {
                Next::Poll => invoke_backoff.reset(),
                Next::Backoff => {
                    if !sleep_or_stop(&self.ctx.stop, invoke_backoff.next()).await {
                        return;
                    }
                }
            }
        }
    }

    /// Waits for messages, then gathers more until the batch is full, the window has passed or the
    /// payload limit is reached. `None` once stopped: what was received and not yet invoked, including
    /// what receives still in flight bring back, is released (made visible again) for the next poller
    /// rather than left invisible for a whole visibility timeout.
    async fn gather(self: &Arc<Self>, backoff: &mut Backoff) -> Option<Vec<Received>> {
        let mut batch = loop {
            let mut receive = self.spawn_receive(self.batch_size.min(MAX_RECEIVE), LONG_POLL_SECS);
            let first = tokio::select! {
                _ = self.ctx.stop.cancelled() => {
                    self.release_later(Vec::new(), vec![receive]);
                    return None;
                }
                got = &mut receive => flatten(got),
            };
            match first {
                Ok(got) if got.is_empty() => continue,
                Ok(got) => {
                    backoff.reset();
                    break got;
                }
                Err(err) => {
                    tracing::warn!(mapping = %self.ctx.mapping.uuid, "{err:#}");
                    self.results.set(RESULT_UNREACHABLE).await;
                    if !sleep_or_stop(&self.ctx.stop, backoff.next()).await {
                        return None;
                    }
                }
            }
        };
        let deadline = Instant::now() + self.window;
        let mut bytes: usize = batch.iter().map(|r| r.json.len() + 1).sum();
        let mut index: HashMap<String, usize> =
            batch.iter().enumerate().map(|(i, r)| (r.message_id.clone(), i)).collect();
        // Parallel receives only while every call comes back full (a backlog): on a thin queue the
        // extra calls would come back empty, and cost the server as much as full ones.
        let mut parallel = if batch.len() >= MAX_RECEIVE { 2 } else { 1 };
        while batch.len() < self.batch_size && bytes < MAX_PAYLOAD {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let wait = remaining.as_secs().min(LONG_POLL_SECS);
            let missing = self.batch_size - batch.len();
            // Past half the payload limit, one call at a time keeps the overshoot small.
            let calls = missing.div_ceil(MAX_RECEIVE).min(if bytes > MAX_PAYLOAD / 2 { 1 } else { parallel });
            let mut receives: Vec<_> =
                (0..calls).map(|i| self.spawn_receive((missing - i * MAX_RECEIVE).min(MAX_RECEIVE), wait)).collect();
            let round = tokio::select! {
                _ = self.ctx.stop.cancelled() => {
                    self.release_later(batch, receives);
                    return None;
                }
                round = futures::future::join_all(receives.iter_mut()) => round,
            };
            let mut got_any = false;
            let mut all_full = true;
            for got in round {
                match flatten(got) {
                    Ok(got) => {
                        got_any |= !got.is_empty();
                        all_full &= got.len() >= MAX_RECEIVE;
                        for r in got {
                            bytes += r.json.len() + 1;
                            // SQS may hand a message to two receives at once (at-least-once); the
                            // function sees it once, with the newer receipt handle.
                            match index.get(&r.message_id) {
                                Some(&i) => batch[i] = r,
                                None => {
                                    index.insert(r.message_id.clone(), batch.len());
                                    batch.push(r);
                                }
                            }
                        }
                    }
                    Err(err) => {
                        all_full = false;
                        tracing::warn!(mapping = %self.ctx.mapping.uuid, "{err:#}");
                    }
                }
            }
            parallel = if all_full { (parallel * 2).min(MAX_PARALLEL_RECEIVES) } else { (parallel / 2).max(1) };
            // A short poll (less than a second of window left) that found nothing ends the window
            // rather than spinning on an empty queue.
            if !got_any && wait == 0 {
                break;
            }
        }
        Some(batch)
    }

    /// A receive in its own task: a poller told to stop can return at once while the receive
    /// finishes (the server may already have taken messages for it).
    fn spawn_receive(self: &Arc<Self>, max: usize, wait_secs: u64) -> JoinHandle<anyhow::Result<Vec<Received>>> {
        let poller = self.clone();
        tokio::spawn(async move { poller.receive(max, wait_secs).await })
    }

    /// Makes `batch`, and whatever the receives in flight bring back, visible again, in the
    /// background: the poller is stopping and will not invoke them.
    fn release_later(self: &Arc<Self>, batch: Vec<Received>, receives: Vec<JoinHandle<anyhow::Result<Vec<Received>>>>) {
        let poller = self.clone();
        tokio::spawn(async move {
            let mut all = batch;
            for got in futures::future::join_all(receives).await {
                if let Ok(got) = flatten(got) {
                    all.extend(got);
                }
            }
            poller.release(&all).await;
        });
    }

    /// `ChangeMessageVisibilityBatch` to 0 for messages never handed to the function.
    async fn release(&self, messages: &[Received]) {
        let calls = messages.chunks(MAX_DELETE).map(|chunk| async move {
            let entries = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&r.receipt_handle)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            let sent = self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await;
            if let Err(err) = sent {
                // They come back when their visibility timeout ends instead.
                tracing::info!(mapping = %self.ctx.mapping.uuid, "release messages on stop: {}", DisplayErrorContext(err));
            }
        });
        futures::future::join_all(calls).await;
    }

    /// One `ReceiveMessage` call of up to `max` messages, waiting up to `wait_secs` for the first.
    async fn receive(&self, max: usize, wait_secs: u64) -> anyhow::Result<Vec<Received>> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(wait_secs as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ReceiveMessage {}: {}", self.source, DisplayErrorContext(e)))?;
        let mut got = Vec::new();
        for message in out.messages.unwrap_or_default() {
            let (Some(message_id), Some(receipt_handle)) = (message.message_id.clone(), message.receipt_handle.clone())
            else {
                tracing::warn!(mapping = %self.ctx.mapping.uuid, "ReceiveMessage {}: a message without id or receipt handle", self.source);
                continue;
            };
            let json = serde_json::to_vec(&record(&message, &self.source, &self.region))?;
            got.push(Received { message_id, receipt_handle, json });
        }
        Ok(got)
    }

    /// Invokes the function with the batch (in parts when it exceeds the payload limit) and deletes
    /// what succeeded.
    async fn process(&self, batch: Vec<Received>) -> Next {
        let mut rest = batch.as_slice();
        while !rest.is_empty() {
            let mut size = 0;
            let take = rest
                .iter()
                .take_while(|r| {
                    size += r.json.len() + 1;
                    size <= MAX_PAYLOAD - 64
                })
                .count()
                .max(1);
            let (part, tail) = rest.split_at(take);
            rest = tail;
            if let Next::Backoff = self.invoke(part).await {
                // The rest stays invisible until its visibility timeout, like the part just tried.
                return Next::Backoff;
            }
        }
        Next::Poll
    }

    async fn invoke(&self, part: &[Received]) -> Next {
        let mut payload = Vec::with_capacity(part.iter().map(|r| r.json.len() + 1).sum::<usize>() + 16);
        payload.extend_from_slice(b"{\"Records\":[");
        for (i, r) in part.iter().enumerate() {
            if i > 0 {
                payload.push(b',');
            }
            payload.extend_from_slice(&r.json);
        }
        payload.extend_from_slice(b"]}");
        metrics::counter!(crate::metrics::RECORDS_TOTAL, "source" => "sqs").increment(part.len() as u64);
        let outcome =
            self.ctx.invoker.invoke(&self.ctx.account_id, &self.ctx.mapping.function_arn, Bytes::from(payload)).await;
        let uuid = &self.ctx.mapping.uuid;
        match outcome {
            BatchResult::Succeeded(response) => {
                let failed = if self.report_failures {
                    match batch_item_failures(&response, part) {
                        Ok(failed) => failed,
                        Err(why) => {
                            tracing::info!(mapping = %uuid, "the function's batch response is not valid, the batch failed: {why}");
                            batch_error("invalid_response");
                            self.results.set(RESULT_FUNCTION_FAILED).await;
                            return Next::Poll;
                        }
                    }
                } else {
                    HashSet::new()
                };
                let done: Vec<&Received> = part.iter().filter(|r| !failed.contains(r.message_id.as_str())).collect();
                self.delete(&done).await;
                self.results.set(RESULT_OK).await;
                Next::Poll
            }
            BatchResult::FunctionError(error) => {
                tracing::info!(mapping = %uuid, "the function failed a batch of {}: {}", part.len(), String::from_utf8_lossy(&error));
                batch_error("function_error");
                self.results.set(RESULT_FUNCTION_FAILED).await;
                Next::Poll
            }
            BatchResult::Retryable(why) => {
                tracing::info!(mapping = %uuid, "batch invoke throttled or refused for now: {why}");
                batch_error("retryable");
                self.results.set(RESULT_FUNCTION_FAILED).await;
                Next::Backoff
            }
            BatchResult::Failed(why) => {
                tracing::warn!(mapping = %uuid, "batch invoke failed: {why}");
                batch_error("failed");
                self.results.set(RESULT_FUNCTION_FAILED).await;
                Next::Backoff
            }
        }
    }

    /// Deletes the messages (in parallel batches of ten). A message whose deletion fails is
    /// processed again once visible: at least once, as SQS itself.
    async fn delete(&self, done: &[&Received]) {
        let calls = done.chunks(MAX_DELETE).map(|chunk| async move {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&r.receipt_handle)
                        .build()
                        .ok()
                })
                .collect();
            let mut backoff = Backoff::default();
            for attempt in 0..3 {
                let sent = self
                    .sqs
                    .delete_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries.clone()))
                    .send()
                    .await;
                match sent {
                    Ok(out) => {
                        for failed in out.failed {
                            tracing::warn!(
                                mapping = %self.ctx.mapping.uuid,
                                "DeleteMessageBatch {}: entry {} failed: {} {}",
                                self.source,
                                failed.id,
                                failed.code,
                                failed.message.unwrap_or_default()
                            );
                        }
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(mapping = %self.ctx.mapping.uuid, attempt, "DeleteMessageBatch {}: {}", self.source, DisplayErrorContext(err));
                        tokio::time::sleep(backoff.next()).await;
                    }
                }
            }
        });
        futures::future::join_all(calls).await;
    }
}

/// A spawned receive's outcome (a panicked receive is an error like any other).
fn flatten(joined: Result<anyhow::Result<Vec<Received>>, tokio::task::JoinError>) -> anyhow::Result<Vec<Received>> {
    joined.map_err(|e| anyhow::anyhow!("receive task: {e}"))?
}

fn batch_error(kind: &'static str) {
    metrics::counter!(crate::metrics::BATCH_ERRORS_TOTAL, "source" => "sqs", "kind" => kind).increment(1);
}

/// The ids the function reported failed (`{"batchItemFailures":[{"itemIdentifier":"<messageId>"}]}`);
/// `Err` when the response does not say which, and the whole batch counts as failed, as Lambda:
/// a response that is not JSON or not an object, an item without a valid `itemIdentifier`, or an
/// identifier that is not in the batch. An empty or null response, or no (or a null or empty)
/// `batchItemFailures`, means every message succeeded.
fn batch_item_failures<'a>(response: &[u8], part: &'a [Received]) -> Result<HashSet<&'a str>, String> {
    if response.iter().all(u8::is_ascii_whitespace) {
        return Ok(HashSet::new());
    }
    let value: Value = serde_json::from_slice(response).map_err(|e| format!("not JSON: {e}"))?;
    let items = match value {
        Value::Null => return Ok(HashSet::new()),
        Value::Object(mut map) => match map.remove("batchItemFailures") {
            None | Some(Value::Null) => return Ok(HashSet::new()),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(format!("batchItemFailures is not a list: {other}")),
        },
        other => return Err(format!("not an object: {other}")),
    };
    let mut failed = HashSet::new();
    for item in items {
        let id = item.get("itemIdentifier").and_then(Value::as_str).unwrap_or_default();
        let known = part.iter().find(|r| r.message_id == id && !id.is_empty());
        match known {
            Some(r) => failed.insert(r.message_id.as_str()),
            None => return Err(format!("item {item} does not name a message of the batch")),
        };
    }
    Ok(failed)
}

/// A record of the `aws:sqs` event, as Lambda sends it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    message_id: &'a str,
    receipt_handle: &'a str,
    body: &'a str,
    attributes: BTreeMap<&'a str, &'a str>,
    message_attributes: BTreeMap<&'a str, Attribute<'a>>,
    md5_of_body: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    md5_of_message_attributes: Option<&'a str>,
    event_source: &'static str,
    #[serde(rename = "eventSourceARN")]
    event_source_arn: &'a str,
    aws_region: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Attribute<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    string_value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    binary_value: Option<String>,
    string_list_values: Vec<&'a str>,
    binary_list_values: Vec<String>,
    data_type: &'a str,
}

fn record<'a>(message: &'a Message, source: &'a str, region: &'a str) -> Record<'a> {
    let b64 = |b: &aws_sdk_sqs::primitives::Blob| base64::engine::general_purpose::STANDARD.encode(b.as_ref());
    let attribute = |a: &'a MessageAttributeValue| Attribute {
        string_value: a.string_value.as_deref(),
        binary_value: a.binary_value.as_ref().map(b64),
        string_list_values: a.string_list_values().iter().map(String::as_str).collect(),
        binary_list_values: a.binary_list_values().iter().map(b64).collect(),
        data_type: &a.data_type,
    };
    Record {
        message_id: message.message_id.as_deref().unwrap_or_default(),
        receipt_handle: message.receipt_handle.as_deref().unwrap_or_default(),
        body: message.body.as_deref().unwrap_or_default(),
        attributes: message.attributes.iter().flatten().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        message_attributes: message
            .message_attributes
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), attribute(v)))
            .collect(),
        md5_of_body: message.md5_of_body.as_deref().unwrap_or_default(),
        md5_of_message_attributes: message.md5_of_message_attributes.as_deref(),
        event_source: "aws:sqs",
        event_source_arn: source,
        aws_region: region,
    }
}

/// The mapping's `LastProcessingResult`, written only when it changes.
#[derive(Clone)]
pub(super) struct ProcessingResults {
    ctx: PollContext,
    current: Arc<Mutex<String>>,
}

impl ProcessingResults {
    pub(super) fn new(ctx: &PollContext) -> Self {
        Self { ctx: ctx.clone(), current: Arc::new(Mutex::new(ctx.mapping.last_processing_result.clone())) }
    }

    pub(super) async fn set(&self, result: &str) {
        {
            let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            if *current == result {
                return;
            }
            *current = result.to_owned();
        }
        if let Err(err) = self.ctx.client.set_processing_result(&self.ctx.mapping.uuid, result).await {
            tracing::warn!(mapping = %self.ctx.mapping.uuid, "record LastProcessingResult {result:?}: {err}");
            // Written again at the next change of heart.
            self.current.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

/// Exponential backoff from 100 ms to 30 s.
#[derive(Default)]
pub(super) struct Backoff {
    failures: u32,
}

impl Backoff {
    pub(super) fn next(&mut self) -> Duration {
        let delay =
            Duration::from_millis(100u64.saturating_mul(1 << self.failures.min(9))).min(Duration::from_secs(30));
        self.failures = self.failures.saturating_add(1);
        delay
    }

    pub(super) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Sleeps `delay`; false when `stop` came first.
pub(super) async fn sleep_or_stop(stop: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::primitives::Blob;

    fn received(id: &str) -> Received {
        Received { message_id: id.into(), receipt_handle: format!("rh-{id}"), json: Vec::new() }
    }

    #[test]
    fn batch_item_failures_follow_lambda() {
        let part = [received("a"), received("b"), received("c")];
        let ok = |body: &str| batch_item_failures(body.as_bytes(), &part).map(|s| s.len());
        assert_eq!(ok(""), Ok(0));
        assert_eq!(ok("null"), Ok(0));
        assert_eq!(ok("{}"), Ok(0));
        assert_eq!(ok(r#"{"batchItemFailures":null}"#), Ok(0));
        assert_eq!(ok(r#"{"batchItemFailures":[]}"#), Ok(0));
        let failed = batch_item_failures(br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#, &part).expect("valid");
        assert_eq!(failed, HashSet::from(["b"]));
        for bad in [
            "not json",
            "\"ok\"",
            "[]",
            r#"{"batchItemFailures":"b"}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"z"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifer":"b"}]}"#,
        ] {
            assert!(batch_item_failures(bad.as_bytes(), &part).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_have_lambdas_shape() {
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh")
            .body("hello")
            .md5_of_body("5d41402abc4b2a76b9719d911017c592")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "1")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1545082649183")
            .message_attributes(
                "s",
                MessageAttributeValue::builder().data_type("String").string_value("v").build().expect("attribute"),
            )
            .message_attributes(
                "b",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(Blob::new(b"1100".to_vec()))
                    .build()
                    .expect("attribute"),
            )
            .build();
        let json = serde_json::to_value(record(&message, "arn:aws:sqs:eu-west-1:123456789012:q", "eu-west-1"))
            .expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({
                "messageId": "m-1",
                "receiptHandle": "rh",
                "body": "hello",
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183"},
                "messageAttributes": {
                    "s": {"stringValue": "v", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
                    "b": {"binaryValue": "MTEwMA==", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
                },
                "md5OfBody": "5d41402abc4b2a76b9719d911017c592",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:q",
                "awsRegion": "eu-west-1",
            })
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        let mut b = Backoff::default();
        assert_eq!(b.next(), Duration::from_millis(100));
        assert_eq!(b.next(), Duration::from_millis(200));
        for _ in 0..20 {
            b.next();
        }
        assert_eq!(b.next(), Duration::from_secs(30));
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(100));
    }
}
