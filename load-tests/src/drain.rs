//! `drain`: event-source mappings under load, against the servers the tests use (kinesalite for
//! Kinesis, moto's server for SQS). For each source: a backlog of records is put, read back by
//! this program straight from the server (the baseline: the server's raw read rate), put again
//! where reading consumed it (SQS), then drained by a Lamina mapping into a no-op Python function;
//! then records are put at a steady rate to measure their age when the function gets them.
//!
//! What the function saw is learnt from its own log lines (`GET /_lamina/v1/functions/{name}/logs`):
//! each invocation prints its request id, its record count, its start and end times and, for every
//! record, the time since it was put (each record carries its put time). Rates are taken between
//! the function's own timestamps, so how often this program reads the logs does not enter them.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use http::Method;
use serde_json::{Value, json};

use crate::client::{Client, Creds};
use crate::procs::Snapshot;
use crate::stats::Stats;

const KINESIS_JSON: &str = "application/x-amz-json-1.1";
const SQS_JSON: &str = "application/x-amz-json-1.0";

/// Prints one line per invocation: `DRAIN <request id> <records> <start ms> <end ms> <phase>
/// <age ms,...>`; a record is `<phase>:<put time ms>:<index>:<padding>`.
const FUNCTION: &str = r#"import base64
import time


def handler(event, context):
    start = time.time()
    now_ms = int(start * 1000)
    records = event.get("Records") or []
    phase, ages = "-", []
    for r in records:
        if "kinesis" in r:
            data = base64.b64decode(r["kinesis"]["data"]).decode()
        else:
            data = r.get("body", "")
        parts = data.split(":", 2)
        phase = parts[0]
        ages.append(str(now_ms - int(parts[1])))
    print("DRAIN", context.aws_request_id, len(records), now_ms, int(time.time() * 1000), phase,
          ",".join(ages) or "-")
"#;

/// One `drain` run.
pub struct DrainRun {
    /// Kinesis endpoint (none: skip Kinesis).
    pub kinesis: Option<String>,
    /// SQS endpoint (none: skip SQS).
    pub sqs: Option<String>,
    /// Keys for the two servers.
    pub aws: Creds,
    /// Records of the Kinesis backlog.
    pub records: usize,
    /// Messages of the SQS backlog.
    pub sqs_records: usize,
    pub shards: usize,
    /// BatchSize of the Kinesis mapping (and `Limit` of the baseline's GetRecords).
    pub batch_size: usize,
    /// BatchSize of the SQS mapping.
    pub sqs_batch_size: usize,
    /// MaximumBatchingWindowInSeconds of both mappings.
    pub window_s: u32,
    /// Concurrent ReceiveMessage + DeleteMessageBatch loops of the SQS baseline.
    pub sqs_consumers: usize,
    pub record_bytes: usize,
    /// Records/s of the steady phase (default: half the drain rate just measured).
    pub steady_rate: Option<f64>,
    pub steady_seconds: u64,
    /// Longest wait for a mapping to drain what was put.
    pub timeout: Duration,
    /// Pid of the server: CPU per record of its process tree during the drain.
    pub server_pid: Option<u32>,
}

pub async fn run(lambda: &Client, run: &DrainRun) -> anyhow::Result<()> {
    if let Some(endpoint) = &run.kinesis {
        let kinesis = Arc::new(Source::kinesis(endpoint, run).await?);
        let result = measure(lambda, run, &kinesis).await;
        kinesis.delete().await;
        result.context("Kinesis")?;
    }
    if let Some(endpoint) = &run.sqs {
        let sqs = Arc::new(Source::sqs(endpoint, run).await?);
        let result = measure(lambda, run, &sqs).await;
        sqs.delete().await;
        result.context("SQS")?;
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A record of `phase` (`b`: backlog, `s`: steady), stamped now, padded to `bytes`.
fn record(phase: char, i: usize, bytes: usize) -> String {
    let mut r = format!("{phase}:{}:{i}:", now_ms());
    if r.len() < bytes {
        r.push_str(&"x".repeat(bytes - r.len()));
    }
    r
}

/// A stream or a queue on its server.
enum Source {
    Kinesis { client: Client, stream: String, arn: String, shards: usize },
    Sqs { client: Client, url: String, arn: String },
}

impl Source {
    async fn kinesis(endpoint: &str, run: &DrainRun) -> anyhow::Result<Self> {
        let client = Client::aws_json(endpoint, run.aws.clone(), "kinesis")?;
        let stream = format!("lamina-drain-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        kinesis_op(&client, "CreateStream", &json!({"StreamName": stream, "ShardCount": run.shards})).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let arn = loop {
            let out = kinesis_op(&client, "DescribeStreamSummary", &json!({"StreamName": stream})).await?;
            let summary = &out["StreamDescriptionSummary"];
            if summary["StreamStatus"] == "ACTIVE" {
                break summary["StreamARN"].as_str().context("StreamARN")?.to_owned();
            }
            anyhow::ensure!(Instant::now() < deadline, "stream {stream} not ACTIVE after 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Ok(Self::Kinesis { client, stream, arn, shards: run.shards })
    }

    async fn sqs(endpoint: &str, run: &DrainRun) -> anyhow::Result<Self> {
        let client = Client::aws_json(endpoint, run.aws.clone(), "sqs")?;
        let name = format!("lamina-drain-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        // Longer than any batch takes, so no message comes back while the function has it.
        let out =
            sqs_op(&client, "CreateQueue", &json!({"QueueName": name, "Attributes": {"VisibilityTimeout": "120"}}))
                .await?;
        let url = out["QueueUrl"].as_str().context("QueueUrl")?.to_owned();
        let attrs =
            sqs_op(&client, "GetQueueAttributes", &json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]})).await?;
        let arn = attrs["Attributes"]["QueueArn"].as_str().context("QueueArn")?.to_owned();
        Ok(Self::Sqs { client, url, arn })
    }

    fn label(&self) -> String {
        match self {
            Self::Kinesis { shards, .. } => format!("Kinesis (kinesalite), {shards} shards"),
            Self::Sqs { .. } => "SQS (moto's server), standard queue".into(),
        }
    }

    fn arn(&self) -> &str {
        match self {
            Self::Kinesis { arn, .. } | Self::Sqs { arn, .. } => arn,
        }
    }

    /// The most records one put call carries.
    fn chunk(&self) -> usize {
        match self {
            Self::Kinesis { .. } => 500,
            Self::Sqs { .. } => 10,
        }
    }

    /// Puts `records` in one call.
    async fn put(&self, records: &[String]) -> anyhow::Result<()> {
        match self {
            Self::Kinesis { client, stream, .. } => {
                let entries: Vec<Value> = records
                    .iter()
                    .map(|r| {
                        // The index spreads the records over the shards.
                        let key = r.split(':').nth(2).unwrap_or_default();
                        json!({"Data": base64::engine::general_purpose::STANDARD.encode(r), "PartitionKey": key})
                    })
                    .collect();
                let out = kinesis_op(client, "PutRecords", &json!({"StreamName": stream, "Records": entries})).await?;
                let failed = out["FailedRecordCount"].as_u64().unwrap_or(0);
                anyhow::ensure!(failed == 0, "PutRecords: {failed} records failed");
            }
            Self::Sqs { client, url, .. } => {
                let entries: Vec<Value> =
                    records.iter().enumerate().map(|(i, r)| json!({"Id": i.to_string(), "MessageBody": r})).collect();
                let out = sqs_op(client, "SendMessageBatch", &json!({"QueueUrl": url, "Entries": entries})).await?;
                let failed = out["Failed"].as_array().map_or(0, Vec::len);
                anyhow::ensure!(failed == 0, "SendMessageBatch: {failed} messages failed: {}", out["Failed"]);
            }
        }
        Ok(())
    }

    /// Puts `count` backlog records from 8 concurrent callers; the rate.
    async fn put_backlog(self: &Arc<Self>, count: usize, bytes: usize) -> anyhow::Result<f64> {
        let next = Arc::new(AtomicUsize::new(0));
        let chunk = self.chunk();
        let started = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (source, next) = (self.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let first = next.fetch_add(chunk, Ordering::Relaxed);
                        if first >= count {
                            return anyhow::Ok(());
                        }
                        let records: Vec<String> =
                            (first..(first + chunk).min(count)).map(|i| record('b', i, bytes)).collect();
                        source.put(&records).await?;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        Ok(count as f64 / started.elapsed().as_secs_f64())
    }

    /// The baseline: reads `count` records straight from the server as fast as it serves them.
    /// Kinesis: every shard from TRIM_HORIZON in parallel, GetRecords of `limit`. SQS: `consumers`
    /// loops of ReceiveMessage (10) + DeleteMessageBatch, which empties the queue.
    async fn raw_read(&self, count: usize, limit: usize, consumers: usize) -> anyhow::Result<(usize, Duration)> {
        let started = Instant::now();
        let read = match self {
            Self::Kinesis { client, stream, .. } => {
                let shards = kinesis_op(client, "ListShards", &json!({"StreamName": stream})).await?;
                let ids: Vec<String> = shards["Shards"]
                    .as_array()
                    .context("Shards")?
                    .iter()
                    .filter_map(|s| s["ShardId"].as_str().map(str::to_owned))
                    .collect();
                let tasks: Vec<_> = ids
                    .into_iter()
                    .map(|shard| {
                        let (client, stream) = (client.clone(), stream.clone());
                        tokio::spawn(async move { read_shard(&client, &stream, &shard, limit).await })
                    })
                    .collect();
                let mut total = 0;
                for t in tasks {
                    total += t.await??;
                }
                total
            }
            Self::Sqs { client, url, .. } => {
                let done = Arc::new(AtomicUsize::new(0));
                let tasks: Vec<_> = (0..consumers.max(1))
                    .map(|_| {
                        let (client, url, done) = (client.clone(), url.clone(), done.clone());
                        tokio::spawn(async move { consume(&client, &url, count, &done).await })
                    })
                    .collect();
                for t in tasks {
                    t.await??;
                }
                done.load(Ordering::Relaxed)
            }
        };
        Ok((read, started.elapsed()))
    }

    async fn delete(&self) {
        let _ = match self {
            Self::Kinesis { client, stream, .. } => {
                kinesis_op(client, "DeleteStream", &json!({"StreamName": stream})).await
            }
            Self::Sqs { client, url, .. } => sqs_op(client, "DeleteQueue", &json!({"QueueUrl": url})).await,
        };
    }
}

async fn kinesis_op(client: &Client, op: &str, body: &Value) -> anyhow::Result<Value> {
    client.json_op(&format!("Kinesis_20131202.{op}"), KINESIS_JSON, body).await
}

async fn sqs_op(client: &Client, op: &str, body: &Value) -> anyhow::Result<Value> {
    client.json_op(&format!("AmazonSQS.{op}"), SQS_JSON, body).await
}

/// Reads one shard from its start until a read comes back empty (everything was put before).
async fn read_shard(client: &Client, stream: &str, shard: &str, limit: usize) -> anyhow::Result<usize> {
    let out = kinesis_op(
        client,
        "GetShardIterator",
        &json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await?;
    let mut iterator = out["ShardIterator"].as_str().context("ShardIterator")?.to_owned();
    let mut read = 0;
    loop {
        let out = kinesis_op(client, "GetRecords", &json!({"ShardIterator": iterator, "Limit": limit})).await?;
        let n = out["Records"].as_array().map_or(0, Vec::len);
        read += n;
        match out["NextShardIterator"].as_str() {
            Some(next) if n > 0 => iterator = next.to_owned(),
            _ => return Ok(read),
        }
    }
}

/// ReceiveMessage + DeleteMessageBatch until `done` reaches `count`.
async fn consume(client: &Client, url: &str, count: usize, done: &AtomicUsize) -> anyhow::Result<()> {
    while done.load(Ordering::Relaxed) < count {
        let out = sqs_op(
            client,
            "ReceiveMessage",
            &json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0}),
        )
        .await?;
        let messages = out["Messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            // Others hold the last ones. No long poll: moto's waits for a full batch.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let entries: Vec<Value> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| json!({"Id": i.to_string(), "ReceiptHandle": m["ReceiptHandle"]}))
            .collect();
        sqs_op(client, "DeleteMessageBatch", &json!({"QueueUrl": url, "Entries": entries})).await?;
        done.fetch_add(messages.len(), Ordering::Relaxed);
    }
    Ok(())
}

/// What one invocation printed.
struct Batch {
    records: usize,
    start_ms: u64,
    end_ms: u64,
    phase: String,
    ages_ms: Vec<u64>,
}

/// `DRAIN <request id> <records> <start ms> <end ms> <phase> <ages>` anywhere in `message`.
fn parse(message: &str) -> Option<(String, Batch)> {
    let line = &message[message.find("DRAIN ")?..];
    let mut f = line.split_whitespace().skip(1);
    let id = f.next()?.to_owned();
    let records = f.next()?.parse().ok()?;
    let start_ms = f.next()?.parse().ok()?;
    let end_ms = f.next()?.parse().ok()?;
    let phase = f.next()?.to_owned();
    let ages_ms = f.next()?.split(',').filter_map(|a| a.parse().ok()).collect();
    Some((id, Batch { records, start_ms, end_ms, phase, ages_ms }))
}

/// The function's invocations, read from its logs.
struct Watch<'a> {
    lambda: &'a Client,
    function: String,
    seen: HashSet<String>,
    batches: Vec<Batch>,
}

impl<'a> Watch<'a> {
    fn new(lambda: &'a Client, function: &str) -> Self {
        Self { lambda, function: function.to_owned(), seen: HashSet::new(), batches: Vec::new() }
    }

    async fn poll(&mut self) -> anyhow::Result<()> {
        // The newest 10,000 events: far more than the invocations of one polling interval print.
        let path = format!("/_lamina/v1/functions/{}/logs?Limit=10000", self.function);
        let body: Value = serde_json::from_slice(&self.lambda.call(Method::GET, &path, b"").await?)?;
        for event in body["Events"].as_array().into_iter().flatten() {
            let message = event["Message"].as_str().or_else(|| event["message"].as_str()).unwrap_or_default();
            if let Some((id, batch)) = parse(message)
                && self.seen.insert(id)
            {
                self.batches.push(batch);
            }
        }
        Ok(())
    }

    fn count(&self, phase: &str) -> usize {
        self.phase(phase).map(|b| b.records).sum()
    }

    fn phase<'b>(&'b self, phase: &'b str) -> impl Iterator<Item = &'b Batch> + 'b {
        self.batches.iter().filter(move |b| b.phase == phase)
    }

    /// Waits until the function has seen `count` records of `phase`.
    async fn until(&mut self, phase: &str, count: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll().await?;
            let seen = self.count(phase);
            if seen >= count {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the function saw {seen} of {count} records within {} s",
                timeout.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn measure(lambda: &Client, run: &DrainRun, source: &Arc<Source>) -> anyhow::Result<()> {
    let kinesis = matches!(source.as_ref(), Source::Kinesis { .. });
    let n = if kinesis { run.records } else { run.sqs_records };
    let batch_size = if kinesis { run.batch_size } else { run.sqs_batch_size };
    println!("{}: {n} records of {} B, mapping BatchSize {batch_size}", source.label(), run.record_bytes);

    let put_rate = source.put_backlog(n, run.record_bytes).await?;
    println!("  put ({} per call, 8 callers): {put_rate:.0} records/s", source.chunk());
    let (read, took) = source.raw_read(n, batch_size, run.sqs_consumers).await?;
    anyhow::ensure!(read >= n, "the baseline read {read} of {n} records");
    let raw_rate = read as f64 / took.as_secs_f64();
    let how = if kinesis {
        format!("GetRecords Limit {batch_size}, every shard in parallel")
    } else {
        format!("ReceiveMessage 10 + DeleteMessageBatch, {} consumers", run.sqs_consumers)
    };
    println!("  raw read, same server ({how}): {raw_rate:.0} records/s ({read} in {:.2} s)", took.as_secs_f64());
    if !kinesis {
        // Reading consumed them.
        source.put_backlog(n, run.record_bytes).await?;
    }

    // A name of its own: the logs of a deleted function of the same name are still served.
    let function = format!(
        "bench-drain-{}-{}",
        if kinesis { "kinesis" } else { "sqs" },
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    crate::ensure_function(lambda, &function, "python3.11", FUNCTION, 128).await?;
    // A warm sandbox before the clock starts, as for the other warm figures.
    lambda.invoke(&function, br#"{"Records": []}"#).await?;
    let mut watch = Watch::new(lambda, &function);

    let before = run.server_pid.map(Snapshot::take);
    let created_ms = now_ms();
    let mut mapping = json!({
        "FunctionName": function,
        "EventSourceArn": source.arn(),
        "BatchSize": batch_size,
        "MaximumBatchingWindowInSeconds": run.window_s,
    });
    if kinesis {
        mapping["StartingPosition"] = json!("TRIM_HORIZON");
    }
    let created: Value = serde_json::from_slice(
        &lambda.call(Method::POST, "/2015-03-31/event-source-mappings/", mapping.to_string().as_bytes()).await?,
    )
    .context("CreateEventSourceMapping reply")?;
    let uuid = created["UUID"].as_str().context("UUID in the CreateEventSourceMapping reply")?.to_owned();
    let result = drain(&mut watch, run, n, created_ms, raw_rate, before, source).await;
    let _ = lambda.call(Method::DELETE, &format!("/2015-03-31/event-source-mappings/{uuid}"), b"").await;
    let _ = lambda.delete_function(&function).await;
    result
}

async fn drain(
    watch: &mut Watch<'_>,
    run: &DrainRun,
    n: usize,
    created_ms: u64,
    raw_rate: f64,
    before: Option<Snapshot>,
    source: &Source,
) -> anyhow::Result<()> {
    watch.until("b", n, run.timeout).await?;
    if let Some(before) = before {
        before.report_per(n, "drained record");
    }
    let seen = watch.count("b");
    let (first, last) = watch.phase("b").fold((u64::MAX, 0), |(f, l), b| (f.min(b.start_ms), l.max(b.end_ms)));
    let batches = watch.phase("b").count();
    let active = (last.saturating_sub(first)).max(1) as f64 / 1e3;
    let rate = n as f64 / active;
    let from_create = last.saturating_sub(created_ms).max(1) as f64 / 1e3;
    println!(
        "  mapping drain: {rate:.0} records/s from the first batch's start to the last one's end ({:.0} % of the raw \
         read), {batches} batches (mean {:.0} records){}",
        100.0 * rate / raw_rate,
        seen as f64 / batches.max(1) as f64,
        if seen > n { format!(", {} records seen twice", seen - n) } else { String::new() }
    );
    println!(
        "    from CreateEventSourceMapping to the last batch: {from_create:.2} s ({:.0} records/s); first batch \
         started {:.2} s after it",
        n as f64 / from_create,
        first.saturating_sub(created_ms) as f64 / 1e3
    );

    let rate = run.steady_rate.unwrap_or(rate / 2.0).max(1.0);
    let (sent, took) = steady(source, rate, run.steady_seconds, run.record_bytes).await?;
    watch.until("s", sent, run.timeout).await?;
    let mut ages = Stats::default();
    for b in watch.phase("s") {
        for a in &b.ages_ms {
            ages.record(Duration::from_millis(*a));
        }
    }
    println!(
        "  steady {:.0} records/s for {:.0} s ({sent} records): age at handler start p50 {:.0} ms, p99 {:.0} ms, max \
         {:.0} ms",
        sent as f64 / took.as_secs_f64(),
        took.as_secs_f64(),
        ages.percentile(50.0).as_secs_f64() * 1e3,
        ages.percentile(99.0).as_secs_f64() * 1e3,
        ages.percentile(100.0).as_secs_f64() * 1e3,
    );
    Ok(())
}

/// Puts `rate` records/s for `seconds`, each stamped when it is put; (records put, time taken).
async fn steady(source: &Source, rate: f64, seconds: u64, bytes: usize) -> anyhow::Result<(usize, Duration)> {
    let total = (rate * seconds as f64).round().max(1.0) as usize;
    let started = Instant::now();
    let mut sent = 0;
    while sent < total {
        let due = ((started.elapsed().as_secs_f64() * rate) as usize).clamp(sent.min(total), total);
        while sent < due {
            let records: Vec<String> =
                (sent..(sent + source.chunk()).min(due)).map(|i| record('s', i, bytes)).collect();
            source.put(&records).await?;
            sent += records.len();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok((sent, started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_function_line() {
        let (id, b) = parse("DRAIN 5f0c-1 3 1700000000000 1700000000002 s 12,40,7\n").expect("a DRAIN line");
        assert_eq!(id, "5f0c-1");
        assert_eq!((b.records, b.start_ms, b.end_ms, b.phase.as_str()), (3, 1_700_000_000_000, 1_700_000_000_002, "s"));
        assert_eq!(b.ages_ms, vec![12, 40, 7]);
        let (_, empty) = parse("DRAIN x 0 1 1 - -").expect("an empty batch");
        assert!(empty.ages_ms.is_empty());
        assert!(parse("START RequestId: x").is_none());
    }

    #[test]
    fn records_carry_phase_time_and_index() {
        let r = record('b', 42, 64);
        assert_eq!(r.len(), 64);
        let parts: Vec<&str> = r.splitn(4, ':').collect();
        assert_eq!(parts[0], "b");
        assert!(parts[1].parse::<u64>().is_ok());
        assert_eq!(parts[2], "42");
    }
}
