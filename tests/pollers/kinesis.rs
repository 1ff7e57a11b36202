//! The Kinesis poller end to end: streams on kinesalite, a Python function that logs every batch it
//! is given (and fails on `poison` records unless told to accept them), mappings created with the
//! Lambda SDK. Per-shard order with shards in parallel, a poisoned record blocking only its shard,
//! retry limits, bisection and partial batch failures, starting positions, and checkpoints that
//! survive a restart of the server and a SIGKILL of the poller's process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob as KinesisBlob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    DestinationConfig, Environment, EventSourcePosition, FunctionCode, FunctionResponseType, OnFailure, Runtime,
};
use lamina_tests::external::{create_queue, create_stream, kinesis, queue_arn, sqs, unique};
use lamina_tests::{Backend, ClusterOptions, Tenant, TestEnv, backend_tests, python_zip, wait_until};
use serde_json::Value;

backend_tests!(records_arrive_in_shard_order_with_shards_in_parallel);

/// One `#[tokio::test]` on SQLite per listed async fn taking `&TestEnv`.
macro_rules! sqlite_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite_only {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let env = lamina_tests::TestEnv::start(lamina_tests::Backend::Sqlite).await.expect("sqlite always available");
                    super::$name(&env).await;
                    env.stop().await;
                }
            )*
        }
    };
}

sqlite_tests!(
    a_poisoned_record_blocks_only_its_shard,
    maximum_retry_attempts_discard_the_batch_to_the_destination,
    bisection_isolates_the_poisoned_record,
    reported_item_failures_are_retried_from_the_first,
    starting_positions,
    a_split_shard_is_finished_before_its_children,
    merged_shards_are_finished_before_their_child,
    disabling_and_enabling_resume_where_it_stopped,
);

const ROLE: &str = "arn:aws:iam::123456789012:role/lambda-role";

/// Logs each batch as `KINESISBATCH {start, end, ok, records: [[shard, seq, key, data]], first}`;
/// sleeps `SLEEP_S` seconds; fails the batch when a record's data starts with `poison` (unless
/// `ACCEPT_POISON` is set); reports records whose data starts with `fail` as batch item failures.
const RECORDER: &str = r#"import base64, json, os, time

def handler(event, context):
    start = time.time()
    records = event['Records']
    got = [[r['eventID'].split(':')[0], r['kinesis']['sequenceNumber'], r['kinesis']['partitionKey'],
            base64.b64decode(r['kinesis']['data']).decode()] for r in records]
    time.sleep(float(os.environ.get('SLEEP_S', '0')))
    poisoned = [g for g in got if g[3].startswith('poison')] and not os.environ.get('ACCEPT_POISON')
    print('KINESISBATCH ' + json.dumps({'start': start, 'end': time.time(), 'ok': not poisoned,
                                        'records': got, 'first': records[0]}))
    if poisoned:
        raise Exception('poisoned record')
    return {'batchItemFailures': [{'itemIdentifier': g[1]} for g in got if g[3].startswith('fail')]}
"#;

/// One invocation as the function logged it.
#[derive(Debug, Clone)]
struct Batch {
    start: f64,
    end: f64,
    ok: bool,
    /// (shard, sequence number, partition key, data).
    records: Vec<(String, String, String, String)>,
    first: Value,
}

impl Batch {
    fn data(&self) -> Vec<&str> {
        self.records.iter().map(|r| r.3.as_str()).collect()
    }

    fn shard(&self) -> &str {
        &self.records[0].0
    }
}

/// A tenant, its Lambda client, and a stream.
struct Setup {
    t: Tenant,
    lambda: aws_sdk_lambda::Client,
    kinesis: aws_sdk_kinesis::Client,
    stream: String,
    arn: String,
}

/// A put record: its shard and sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Put {
    shard: String,
    seq: String,
    key: String,
    data: String,
}

/// Sequence numbers compare as numbers.
fn seq_order(seq: &str) -> (usize, &str) {
    (seq.len(), seq)
}

async fn setup(env: &TestEnv, shards: i32) -> Setup {
    let t = env.tenant().await;
    let lambda = env.lambda(&t);
    let kinesis = kinesis();
    let stream = unique("esm");
    let arn = create_stream(&kinesis, &stream, shards).await;
    Setup { t, lambda, kinesis, stream, arn }
}

impl Setup {
    async fn function(&self, name: &str, sleep_s: f64) {
        let env = Environment::builder().variables("SLEEP_S", sleep_s.to_string()).build();
        self.lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::from("python3.11"))
            .role(ROLE)
            .handler("lambda_function.handler")
            .timeout(30)
            .environment(env)
            .code(FunctionCode::builder().zip_file(Blob::new(python_zip(RECORDER))).build())
            .send()
            .await
            .expect("create function");
    }

    /// Maps the stream to `function` (after `configure`) and waits until the mapping is `Enabled`.
    async fn map(
        &self,
        function: &str,
        configure: impl FnOnce(
            aws_sdk_lambda::operation::create_event_source_mapping::builders::CreateEventSourceMappingFluentBuilder,
        )
            -> aws_sdk_lambda::operation::create_event_source_mapping::builders::CreateEventSourceMappingFluentBuilder,
    ) -> String {
        let request = self.lambda.create_event_source_mapping().function_name(function).event_source_arn(&self.arn);
        let created = configure(request).send().await.expect("create event source mapping");
        let uuid = created.uuid().expect("UUID").to_owned();
        wait_until(Duration::from_secs(30), "the mapping Enabled", || async {
            let got = self.lambda.get_event_source_mapping().uuid(&uuid).send().await.ok()?;
            (got.state() == Some("Enabled")).then_some(())
        })
        .await;
        uuid
    }

    /// Puts `(key, data)` records in order (one PutRecords call per 100).
    async fn put(&self, records: &[(String, String)]) -> Vec<Put> {
        let mut out = Vec::new();
        for chunk in records.chunks(100) {
            let entries = chunk
                .iter()
                .map(|(key, data)| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(key)
                        .data(KinesisBlob::new(data.as_bytes()))
                        .build()
                        .expect("entry")
                })
                .collect();
            let answer = self
                .kinesis
                .put_records()
                .stream_name(&self.stream)
                .set_records(Some(entries))
                .send()
                .await
                .expect("PutRecords");
            assert_eq!(answer.failed_record_count(), Some(0), "PutRecords failures: {answer:?}");
            for ((key, data), r) in chunk.iter().zip(answer.records()) {
                out.push(Put {
                    shard: r.shard_id().expect("shard").to_owned(),
                    seq: r.sequence_number().expect("seq").to_owned(),
                    key: key.clone(),
                    data: data.clone(),
                });
            }
        }
        out
    }

    async fn put_one(&self, key: &str, data: &str) -> Put {
        self.put(&[(key.to_owned(), data.to_owned())]).await.remove(0)
    }

    /// The batches `function` logged so far, in the order they started.
    async fn batches(&self, env: &TestEnv, function: &str) -> Vec<Batch> {
        let mut out: Vec<Batch> = env
            .log_messages(&self.t, function)
            .await
            .iter()
            .filter_map(|m| m.split_once("KINESISBATCH ").map(|(_, json)| json.trim().to_owned()))
            .map(|json| {
                let v: Value = serde_json::from_str(&json).expect("a logged batch is JSON");
                let records = v["records"]
                    .as_array()
                    .expect("records")
                    .iter()
                    .map(|r| {
                        let s = |i: usize| r[i].as_str().expect("string").to_owned();
                        (s(0), s(1), s(2), s(3))
                    })
                    .collect();
                Batch {
                    start: v["start"].as_f64().expect("start"),
                    end: v["end"].as_f64().expect("end"),
                    ok: v["ok"].as_bool().expect("ok"),
                    records,
                    first: v["first"].clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.start.total_cmp(&b.start));
        out
    }

    /// Waits until the batches `function` ran successfully hold every record of `puts`.
    async fn await_delivered(&self, env: &TestEnv, function: &str, puts: &[Put]) -> Vec<Batch> {
        let want: HashSet<&str> = puts.iter().map(|p| p.seq.as_str()).collect();
        wait_until(Duration::from_secs(60), &format!("{} records delivered to {function}", want.len()), || async {
            let batches = self.batches(env, function).await;
            let got: HashSet<&str> =
                batches.iter().filter(|b| b.ok).flat_map(|b| b.records.iter().map(|r| r.1.as_str())).collect();
            want.iter().all(|s| got.contains(s)).then(|| batches.clone())
        })
        .await
    }

    async fn mapping(
        &self,
        uuid: &str,
    ) -> aws_sdk_lambda::operation::get_event_source_mapping::GetEventSourceMappingOutput {
        self.lambda.get_event_source_mapping().uuid(uuid).send().await.expect("get mapping")
    }
}

/// The data of the records delivered successfully, in delivery order.
fn delivered(batches: &[Batch]) -> Vec<String> {
    batches.iter().filter(|b| b.ok).flat_map(|b| b.records.iter().map(|r| r.3.clone())).collect()
}

/// 4 shards, 240 records over 16 partition keys, batches of 10, a function that takes 0.3 s: every
/// record arrives once, each shard's records in sequence order, one batch at a time per shard
/// while shards run in parallel, in the guide's event shape.
async fn records_arrive_in_shard_order_with_shards_in_parallel(env: &TestEnv) {
    let s = setup(env, 4).await;
    s.function("recorder", 0.3).await;
    let records: Vec<(String, String)> =
        (0..240).map(|i| (format!("key-{}", i % 16), format!("{}:{}", i % 16, i / 16))).collect();
    let puts = s.put(&records).await;
    let uuid = s.map("recorder", |m| m.starting_position(EventSourcePosition::TrimHorizon).batch_size(10)).await;
    let batches = s.await_delivered(env, "recorder", &puts).await;

    // Every record once, on the shard Kinesis put it in.
    let shard_of: HashMap<&str, &str> = puts.iter().map(|p| (p.seq.as_str(), p.shard.as_str())).collect();
    let mut seen = HashSet::new();
    for b in &batches {
        assert!(b.ok, "no batch fails here: {b:?}");
        assert!(b.records.len() <= 10, "BatchSize 10: {b:?}");
        for r in &b.records {
            assert!(seen.insert(r.1.clone()), "record {} delivered twice", r.1);
            assert_eq!(shard_of.get(r.1.as_str()).copied(), Some(r.0.as_str()), "eventID names the record's shard");
            assert!(b.records.iter().all(|o| o.0 == r.0), "a batch holds one shard's records: {b:?}");
        }
    }
    assert_eq!(seen.len(), puts.len());
    let shards: HashSet<&str> = puts.iter().map(|p| p.shard.as_str()).collect();
    assert_eq!(shards.len(), 4, "16 keys spread over the 4 shards");

    // Per shard: sequence order across batches, and no two batches at once.
    let mut by_shard: BTreeMap<&str, Vec<&Batch>> = BTreeMap::new();
    for b in &batches {
        by_shard.entry(b.shard()).or_default().push(b);
    }
    for (shard, list) in &by_shard {
        let seqs: Vec<&str> = list.iter().flat_map(|b| b.records.iter().map(|r| r.1.as_str())).collect();
        assert!(seqs.windows(2).all(|w| seq_order(w[0]) < seq_order(w[1])), "{shard} out of order: {seqs:?}");
        for w in list.windows(2) {
            assert!(w[0].end <= w[1].start, "{shard} ran two batches at once: {:?} and {:?}", w[0], w[1]);
        }
    }
    // Per partition key: the order it was put in.
    let mut by_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for data in delivered(&batches) {
        let (key, n) = data.split_once(':').expect("key:n");
        by_key.entry(key.to_owned()).or_default().push(n.parse().expect("n"));
    }
    for (key, ns) in &by_key {
        assert_eq!(ns, &(0..15).collect::<Vec<u32>>(), "key {key} out of order");
    }
    // Shards in parallel: some batches of different shards overlapped.
    let overlapped = batches
        .iter()
        .enumerate()
        .any(|(i, a)| batches[i + 1..].iter().any(|b| a.shard() != b.shard() && a.start < b.end && b.start < a.end));
    assert!(overlapped, "the 4 shards were processed one after the other: {batches:?}");

    // The guide's record shape.
    let first = &batches[0].first;
    assert_eq!(first["eventSource"], "aws:kinesis");
    assert_eq!(first["eventVersion"], "1.0");
    assert_eq!(first["eventName"], "aws:kinesis:record");
    assert_eq!(first["eventSourceARN"], s.arn.as_str());
    assert_eq!(first["awsRegion"], env.region.as_str());
    assert_eq!(first["invokeIdentityArn"], ROLE);
    assert_eq!(first["kinesis"]["kinesisSchemaVersion"], "1.0");
    let seq = first["kinesis"]["sequenceNumber"].as_str().expect("sequenceNumber");
    assert_eq!(first["eventID"].as_str(), Some(format!("{}:{seq}", batches[0].shard()).as_str()));
    let put = puts.iter().find(|p| p.seq == seq).expect("a put record");
    assert_eq!(first["kinesis"]["partitionKey"], put.key.as_str());
    let arrival = first["kinesis"]["approximateArrivalTimestamp"].as_f64().expect("epoch seconds");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    assert!((now - 600.0..=now).contains(&arrival), "approximateArrivalTimestamp {arrival} is a recent epoch second");

    let mapping = s.mapping(&uuid).await;
    assert_eq!(mapping.last_processing_result(), Some("OK"));

    // In process the pollers' metrics are on the server's /metrics (a cluster's are on its
    // async-queue processes).
    if env.backend != Backend::Cluster {
        let text = reqwest::get(format!("{}/metrics", env.admin_endpoint()))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        let records = text
            .lines()
            .find_map(|l| l.strip_prefix("lamina_esm_records_total{source=\"kinesis\"} "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        assert!(records.is_some_and(|n| n >= 240.0), "lamina_esm_records_total: {records:?}");
        let age = format!("mapping=\"{uuid}\"");
        assert!(
            text.lines().any(|l| l.starts_with("lamina_esm_iterator_age_ms{") && l.contains(&age)),
            "the mapping's lamina_esm_iterator_age_ms"
        );
    }
}

/// A record the function always fails on stops its shard (retried, nothing after it delivered)
/// while the other shards are drained; once the function accepts it, the shard resumes in order.
async fn a_poisoned_record_blocks_only_its_shard(env: &TestEnv) {
    let s = setup(env, 4).await;
    s.function("recorder", 0.0).await;
    let poison = s.put_one("poisoned-key", "poison").await;
    let records: Vec<(String, String)> = (0..80).map(|i| (format!("key-{i}"), format!("ok-{i}"))).collect();
    let puts = s.put(&records).await;
    let (blocked, healthy): (Vec<Put>, Vec<Put>) = puts.into_iter().partition(|p| p.shard == poison.shard);
    assert!(!blocked.is_empty() && !healthy.is_empty(), "keys spread over the shards");
    let uuid = s.map("recorder", |m| m.starting_position(EventSourcePosition::TrimHorizon).batch_size(5)).await;

    s.await_delivered(env, "recorder", &healthy).await;
    let batches = wait_until(Duration::from_secs(60), "the poisoned batch retried", || async {
        let batches = s.batches(env, "recorder").await;
        (batches.iter().filter(|b| !b.ok).count() >= 3).then_some(batches)
    })
    .await;
    for b in batches.iter().filter(|b| !b.ok) {
        assert_eq!(b.records[0].1, poison.seq, "the same batch is retried: {b:?}");
    }
    assert!(
        batches.iter().filter(|b| b.ok).all(|b| b.shard() != poison.shard),
        "nothing of the poisoned shard was delivered past the poison"
    );
    assert_eq!(s.mapping(&uuid).await.last_processing_result(), Some("PROBLEM: Function call failed"));

    let fixed = Environment::builder().variables("SLEEP_S", "0").variables("ACCEPT_POISON", "1").build();
    s.lambda.update_function_configuration().function_name("recorder").environment(fixed).send().await.expect("update");
    let mut all = blocked.clone();
    all.push(poison.clone());
    let batches = s.await_delivered(env, "recorder", &all).await;
    let resumed: Vec<String> = batches
        .iter()
        .filter(|b| b.ok && b.shard() == poison.shard)
        .flat_map(|b| b.records.iter().map(|r| r.3.clone()))
        .collect();
    let expected: Vec<String> =
        std::iter::once(poison.data.clone()).chain(blocked.iter().map(|p| p.data.clone())).collect();
    assert_eq!(resumed, expected, "the shard resumed at the poison, in order, each record once");
}

/// `MaximumRetryAttempts: 2`: a failing batch runs three times, is then discarded (its record sent
/// to the OnFailure queue), and the shard goes on.
async fn maximum_retry_attempts_discard_the_batch_to_the_destination(env: &TestEnv) {
    let s = setup(env, 1).await;
    s.function("recorder", 0.0).await;
    let sqs = sqs();
    let dlq_url = create_queue(&sqs, &unique("esm-dlq"), 30).await;
    let dlq_arn = queue_arn(&sqs, &dlq_url).await;
    let a = s.put_one("k", "a").await;
    let poison = s.put_one("k", "poison").await;
    let b = s.put_one("k", "b").await;
    let uuid = s
        .map("recorder", |m| {
            m.starting_position(EventSourcePosition::TrimHorizon)
                .batch_size(1)
                .maximum_retry_attempts(2)
                .destination_config(
                    DestinationConfig::builder().on_failure(OnFailure::builder().destination(&dlq_arn).build()).build(),
                )
        })
        .await;
    let batches = s.await_delivered(env, "recorder", &[a.clone(), b.clone()]).await;
    let data: Vec<Vec<&str>> = batches.iter().map(Batch::data).collect();
    assert_eq!(data, [vec!["a"], vec!["poison"], vec!["poison"], vec!["poison"], vec!["b"]]);

    let message = wait_until(Duration::from_secs(30), "the discarded batch's record on the queue", || async {
        let got = sqs.receive_message().queue_url(&dlq_url).wait_time_seconds(1).send().await.ok()?;
        got.messages().first().and_then(|m| m.body()).map(str::to_owned)
    })
    .await;
    let record: Value = serde_json::from_str(&message).expect("JSON record");
    assert_eq!(record["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
    assert!(record["requestContext"]["functionArn"].as_str().is_some_and(|f| f.ends_with(":function:recorder")));
    assert_eq!(record["responseContext"]["functionError"], "Unhandled");
    let info = &record["KinesisBatchInfo"];
    assert_eq!(info["shardId"], poison.shard.as_str());
    assert_eq!(info["startSequenceNumber"], poison.seq.as_str());
    assert_eq!(info["endSequenceNumber"], poison.seq.as_str());
    assert_eq!(info["batchSize"], 1);
    assert_eq!(info["streamArn"], s.arn.as_str());
    assert_eq!(s.mapping(&uuid).await.last_processing_result(), Some("OK"));
}

/// `BisectBatchOnFunctionError` with no retries: the failing batch is halved until the poisoned
/// record is alone, which alone is discarded.
async fn bisection_isolates_the_poisoned_record(env: &TestEnv) {
    let s = setup(env, 1).await;
    s.function("recorder", 0.0).await;
    let puts =
        s.put(&[("k", "a"), ("k", "b"), ("k", "poison"), ("k", "c")].map(|(k, d)| (k.to_owned(), d.to_owned()))).await;
    s.map("recorder", |m| {
        m.starting_position(EventSourcePosition::TrimHorizon)
            .batch_size(10)
            .bisect_batch_on_function_error(true)
            .maximum_retry_attempts(0)
    })
    .await;
    let good: Vec<Put> = puts.iter().filter(|p| p.data != "poison").cloned().collect();
    let batches = s.await_delivered(env, "recorder", &good).await;
    let data: Vec<(bool, Vec<&str>)> = batches.iter().map(|b| (b.ok, b.data())).collect();
    assert_eq!(
        data,
        [
            (false, vec!["a", "b", "poison", "c"]),
            (true, vec!["a", "b"]),
            (false, vec!["poison", "c"]),
            (false, vec!["poison"]),
            (true, vec!["c"]),
        ]
    );
}

/// `ReportBatchItemFailures`: the records before the first reported one are done; the batch is
/// retried from it; with `MaximumRetryAttempts: 1` the rest is then discarded and reading goes on.
async fn reported_item_failures_are_retried_from_the_first(env: &TestEnv) {
    let s = setup(env, 1).await;
    s.function("recorder", 0.0).await;
    s.put(&[("k", "a"), ("k", "b"), ("k", "fail-1"), ("k", "c")].map(|(k, d)| (k.to_owned(), d.to_owned()))).await;
    s.map("recorder", |m| {
        m.starting_position(EventSourcePosition::TrimHorizon)
            .batch_size(10)
            .maximum_retry_attempts(1)
            .function_response_types(FunctionResponseType::ReportBatchItemFailures)
    })
    .await;
    wait_until(Duration::from_secs(60), "the retry from the failed item", || async {
        (s.batches(env, "recorder").await.len() >= 2).then_some(())
    })
    .await;
    let d = s.put_one("k", "d").await;
    let batches = s.await_delivered(env, "recorder", &[d]).await;
    let data: Vec<Vec<&str>> = batches.iter().map(Batch::data).collect();
    assert_eq!(data, [vec!["a", "b", "fail-1", "c"], vec!["fail-1", "c"], vec!["d"]]);
}

/// TRIM_HORIZON reads what the stream already held, AT_TIMESTAMP what arrived from then on,
/// LATEST only what arrives after the mapping started.
async fn starting_positions(env: &TestEnv) {
    let s = setup(env, 1).await;
    for f in ["from-start", "from-time", "from-now"] {
        s.function(f, 0.0).await;
    }
    s.put_one("k", "old").await;
    // Arrival times have millisecond precision: leave a clear gap before the timestamp.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    s.put_one("k", "mid").await;
    s.map("from-start", |m| m.starting_position(EventSourcePosition::TrimHorizon)).await;
    s.map("from-time", |m| {
        m.starting_position(EventSourcePosition::AtTimestamp)
            .starting_position_timestamp(aws_sdk_lambda::primitives::DateTime::from_secs_f64(at))
    })
    .await;
    s.map("from-now", |m| m.starting_position(EventSourcePosition::Latest)).await;
    // LATEST starts whenever its poller first reads: put until it has seen something.
    let mut puts = Vec::new();
    for i in 0.. {
        puts.push(s.put_one("k", &format!("new-{i}")).await);
        if !s.batches(env, "from-now").await.is_empty() {
            break;
        }
        assert!(i < 100, "the LATEST mapping never received a record");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let news: Vec<String> = puts.iter().map(|p| p.data.clone()).collect();
    let from_start = delivered(&s.await_delivered(env, "from-start", &puts).await);
    let from_time = delivered(&s.await_delivered(env, "from-time", &puts).await);
    let from_now = delivered(&s.await_delivered(env, "from-now", &puts[puts.len() - 1..]).await);
    assert_eq!(from_start, [vec!["old".to_owned(), "mid".to_owned()], news.clone()].concat());
    assert_eq!(from_time, [vec!["mid".to_owned()], news.clone()].concat());
    assert!(!from_now.is_empty() && news.ends_with(&from_now), "LATEST got a tail of the new records: {from_now:?}");
}

/// A shard split while its records are read: the parent's records (up to the split) are all
/// delivered before any of its children's, and every partition key keeps its order.
async fn a_split_shard_is_finished_before_its_children(env: &TestEnv) {
    resharded(env, Reshard::Split).await;
}

/// Two shards merged while their records are read: both parents are finished before the child.
async fn merged_shards_are_finished_before_their_child(env: &TestEnv) {
    resharded(env, Reshard::Merge).await;
}

enum Reshard {
    /// One shard into two.
    Split,
    /// Two shards into one.
    Merge,
}

/// Puts records on a stream, maps it, reshards it while the function (0.2 s a batch) works
/// through them, puts more, and checks that no new shard was read before the shards it came from
/// were finished and that each key's records came once, in order.
async fn resharded(env: &TestEnv, reshard: Reshard) {
    let s = setup(env, if matches!(reshard, Reshard::Split) { 1 } else { 2 }).await;
    s.function("recorder", 0.2).await;
    let key = |i: usize| (format!("key-{}", i % 6), format!("{}:{}", i % 6, i / 6));
    let mut puts = s.put(&(0..30).map(key).collect::<Vec<_>>()).await;
    s.map("recorder", |m| m.starting_position(EventSourcePosition::TrimHorizon).batch_size(5)).await;
    let listed = s.kinesis.list_shards().stream_name(&s.stream).send().await.expect("ListShards");
    let parents: HashSet<String> = listed.shards().iter().map(|s| s.shard_id().to_owned()).collect();
    let shards = listed.shards();
    match reshard {
        Reshard::Split => {
            let range = shards[0].hash_key_range().expect("hash range");
            let start: u128 = range.starting_hash_key().parse().expect("start");
            let end: u128 = range.ending_hash_key().parse().expect("end");
            s.kinesis
                .split_shard()
                .stream_name(&s.stream)
                .shard_to_split(shards[0].shard_id())
                .new_starting_hash_key((start + (end - start) / 2).to_string())
                .send()
                .await
                .expect("SplitShard");
        }
        Reshard::Merge => {
            s.kinesis
                .merge_shards()
                .stream_name(&s.stream)
                .shard_to_merge(shards[0].shard_id())
                .adjacent_shard_to_merge(shards[1].shard_id())
                .send()
                .await
                .expect("MergeShards");
        }
    }
    wait_until(Duration::from_secs(30), "the stream ACTIVE after resharding", || async {
        let out = s.kinesis.describe_stream_summary().stream_name(&s.stream).send().await.ok()?;
        (out.stream_description_summary()?.stream_status() == &aws_sdk_kinesis::types::StreamStatus::Active)
            .then_some(())
    })
    .await;
    let children = s.put(&(30..60).map(key).collect::<Vec<_>>()).await;
    assert!(children.iter().all(|p| !parents.contains(&p.shard)), "records after resharding go to new shards");
    puts.extend(children.iter().cloned());
    let batches = s.await_delivered(env, "recorder", &puts).await;

    let last_parent = batches.iter().filter(|b| parents.contains(b.shard())).map(|b| b.end).fold(0.0, f64::max);
    let first_child = batches.iter().filter(|b| !parents.contains(b.shard())).map(|b| b.start).fold(f64::MAX, f64::min);
    assert!(last_parent <= first_child, "a new shard was read before its parents were finished: {batches:?}");
    let mut by_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for data in delivered(&batches) {
        let (key, n) = data.split_once(':').expect("key:n");
        by_key.entry(key.to_owned()).or_default().push(n.parse().expect("n"));
    }
    for (key, ns) in &by_key {
        assert_eq!(ns, &(0..10).collect::<Vec<u32>>(), "key {key}: each record once, in order");
    }
}

/// Disabling stops delivery; enabling again resumes where it stopped (nothing skipped, nothing
/// repeated).
async fn disabling_and_enabling_resume_where_it_stopped(env: &TestEnv) {
    let s = setup(env, 2).await;
    s.function("recorder", 0.0).await;
    let first = s.put(&(0..10).map(|i| (format!("key-{i}"), format!("first-{i}"))).collect::<Vec<_>>()).await;
    let uuid = s.map("recorder", |m| m.starting_position(EventSourcePosition::TrimHorizon)).await;
    s.await_delivered(env, "recorder", &first).await;
    s.lambda.update_event_source_mapping().uuid(&uuid).enabled(false).send().await.expect("disable");
    wait_until(Duration::from_secs(30), "the mapping Disabled", || async {
        (s.mapping(&uuid).await.state() == Some("Disabled")).then_some(())
    })
    .await;
    let second = s.put(&(0..10).map(|i| (format!("key-{i}"), format!("second-{i}"))).collect::<Vec<_>>()).await;
    // Disabled means no poller runs: the records stay in the stream meanwhile.
    let before = s.batches(env, "recorder").await.len();
    s.lambda.update_event_source_mapping().uuid(&uuid).enabled(true).send().await.expect("enable");
    let batches = s.await_delivered(env, "recorder", &second).await;
    assert!(
        batches[..before].iter().all(|b| b.data().iter().all(|d| d.starts_with("first-"))),
        "nothing was delivered while the mapping was disabled"
    );
    let got = delivered(&batches);
    assert_eq!(got.len(), first.len() + second.len(), "each record once: {got:?}");
}

/// Checkpoints are in the database: after a restart of the server the mapping goes on after the
/// last record processed, delivering none of the earlier ones again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_survive_a_restart() {
    let env = TestEnv::start(Backend::Sqlite).await.expect("sqlite always available");
    let s = setup(&env, 2).await;
    s.function("recorder", 0.0).await;
    let first: Vec<(String, String)> = (0..20).map(|i| (format!("key-{}", i % 4), format!("first-{i}"))).collect();
    let first = s.put(&first).await;
    s.map("recorder", |m| m.starting_position(EventSourcePosition::TrimHorizon).batch_size(5)).await;
    s.await_delivered(&env, "recorder", &first).await;

    let env = env.restart(|_| {}).await;
    let second: Vec<(String, String)> = (0..20).map(|i| (format!("key-{}", i % 4), format!("second-{i}"))).collect();
    let second = s.put(&second).await;
    let batches = s.await_delivered(&env, "recorder", &second).await;
    let got = delivered(&batches);
    assert!(got.iter().all(|d| d.starts_with("second-")), "records processed before the restart came again: {got:?}");
    assert_eq!(got.len(), second.len(), "each record once: {got:?}");
    env.stop().await;
}

/// Two async-queue replicas; the one polling the mapping is SIGKILLed: the other takes the
/// mapping's lease over once it expires and goes on from the checkpoints (at most the batch in
/// flight at the kill comes again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_poller_is_taken_over_from_its_checkpoints() {
    let layout = ClusterOptions { extra_args: vec!["--queues=2".into()], ..ClusterOptions::default() };
    let Some(env) = TestEnv::start_cluster(&layout).await else { return };
    let s = setup(&env, 2).await;
    s.function("recorder", 0.0).await;
    let first: Vec<(String, String)> = (0..20).map(|i| (format!("key-{}", i % 4), format!("first-{i}"))).collect();
    let first = s.put(&first).await;
    let uuid = s.map("recorder", |m| m.starting_position(EventSourcePosition::TrimHorizon).batch_size(5)).await;
    s.await_delivered(&env, "recorder", &first).await;

    let holder = lease_holder(&env, &uuid).await;
    let pid = queue_process(&env, &holder);
    let status = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status().expect("run kill");
    assert!(status.success(), "kill -KILL {pid}");

    let second: Vec<(String, String)> = (0..20).map(|i| (format!("key-{}", i % 4), format!("second-{i}"))).collect();
    let second = s.put(&second).await;
    let batches = s.await_delivered(&env, "recorder", &second).await;
    assert_ne!(lease_holder(&env, &uuid).await, holder, "the other replica polls now");
    // Execution hosts outlive the kill: the logs hold both halves. Before the kill every batch had
    // been checkpointed, so nothing comes twice.
    let got = delivered(&batches);
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "a record came twice: {got:?}");
    assert_eq!(got.len(), first.len() + second.len());
    env.stop().await;
}

/// The owner of the mapping's lease (as the database holds it).
async fn lease_holder(env: &TestEnv, uuid: &str) -> String {
    let key = format!("mapping:{uuid}");
    lamina_metadata::on_pool!(env.server.metadata.store(), pool => {
        sqlx::query_scalar::<_, String>("select owner from event_source_leases where lease_key = $1")
            .bind(&key)
            .fetch_one(pool)
            .await
    })
    .expect("the mapping's lease")
}

/// The pid of the cluster's async-queue process named `owner` (each keeps its name in its data
/// directory).
fn queue_process(env: &TestEnv, owner: &str) -> u32 {
    for pid in env.server.cluster_children("async-queue") {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let dir = cmdline
            .split(|b| *b == 0)
            .filter_map(|a| std::str::from_utf8(a).ok())
            .find_map(|a| a.strip_prefix("--data-dir=").map(str::to_owned));
        let name = dir.and_then(|d| std::fs::read_to_string(format!("{d}/event-sources-owner")).ok());
        if name.as_deref().map(str::trim) == Some(owner) {
            return pid;
        }
    }
    panic!("no async-queue process is {owner}");
}
