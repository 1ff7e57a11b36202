//! The Kinesis event a function receives (the guide's `aws:kinesis` record shape), the
//! `ReportBatchItemFailures` response it may return, and the checkpoint strings a shard keeps.

use base64::Engine as _;
use serde_json::{Value, json};

/// One record read from a shard, as much of it as the event and the poller need.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    /// Epoch milliseconds (`ApproximateArrivalTimestamp`).
    pub arrival_ms: i64,
}

impl Record {
    /// Bytes this record adds to an event (its JSON plus the fixed fields), close enough to keep a
    /// batch under the synchronous payload limit.
    pub fn event_size(&self, fixed: usize) -> usize {
        // Escaping may grow the partition key; twice its length covers ordinary keys.
        self.data.len().div_ceil(3) * 4 + 2 * self.partition_key.len() + 2 * self.sequence_number.len() + fixed
    }
}

/// What every record of one mapping's events repeats.
#[derive(Debug, Clone)]
pub(crate) struct EventContext {
    pub shard_id: String,
    pub event_source_arn: String,
    pub aws_region: String,
    /// The function's execution role (`invokeIdentityArn`).
    pub invoke_identity_arn: String,
}

impl EventContext {
    /// The bytes per record beside the record's own data (field names, ARNs, ids).
    pub fn fixed_size(&self) -> usize {
        320 + self.shard_id.len() + self.event_source_arn.len() + self.aws_region.len() + self.invoke_identity_arn.len()
    }
}

/// The `{"Records": [...]}` event for `records` of one shard.
pub(crate) fn event(ctx: &EventContext, records: &[Record]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                    "approximateArrivalTimestamp": r.arrival_ms as f64 / 1000.0,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{}:{}", ctx.shard_id, r.sequence_number),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": ctx.invoke_identity_arn,
                "awsRegion": ctx.aws_region,
                "eventSourceARN": ctx.event_source_arn,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// How a function that reports batch item failures judged its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemFailures {
    /// Every record succeeded (no list, an empty list, or a response that is not an object).
    None,
    /// The records from this index of the batch on must be retried (the lowest failed one).
    From(usize),
    /// The response names a record that is not in the batch or no record at all: the whole batch
    /// failed, as Lambda treats an unusable `itemIdentifier`.
    Invalid,
}

/// Reads `{"batchItemFailures":[{"itemIdentifier": seq}, ...]}` against the batch's records.
pub(crate) fn item_failures(payload: &[u8], records: &[Record]) -> ItemFailures {
    let Ok(Value::Object(response)) = serde_json::from_slice::<Value>(payload) else {
        return ItemFailures::None;
    };
    let failures = match response.get("batchItemFailures") {
        None | Some(Value::Null) => return ItemFailures::None,
        Some(Value::Array(items)) => items,
        Some(_) => return ItemFailures::Invalid,
    };
    let mut lowest: Option<usize> = None;
    for item in failures {
        let Some(id) = item.get("itemIdentifier").and_then(Value::as_str).filter(|id| !id.is_empty()) else {
            return ItemFailures::Invalid;
        };
        let Some(index) = records.iter().position(|r| r.sequence_number == id) else {
            return ItemFailures::Invalid;
        };
        lowest = Some(lowest.map_or(index, |l| l.min(index)));
    }
    lowest.map_or(ItemFailures::None, ItemFailures::From)
}

/// Where a shard resumes, as its checkpoint string records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Position {
    /// After this sequence number (the last record processed or skipped).
    After(String),
    /// The oldest record still kept.
    TrimHorizon,
    /// The newest end of the shard when the reading starts.
    Latest,
    /// Records that arrived at or after this epoch millisecond.
    AtTimestamp(i64),
    /// The shard is closed and every record of it is done; its children may start.
    ShardEnd,
}

const SHARD_END: &str = "SHARD_END";
const TRIM_HORIZON: &str = "TRIM_HORIZON";
const AT_TIMESTAMP: &str = "AT_TIMESTAMP:";

impl Position {
    /// The checkpoint string of this position. `Latest` is stored as the moment reading started
    /// (an `AtTimestamp`), so a restart resumes there instead of skipping what arrived meanwhile.
    pub fn checkpoint(&self, now_ms: i64) -> String {
        match self {
            Self::After(seq) => seq.clone(),
            Self::TrimHorizon => TRIM_HORIZON.to_owned(),
            Self::Latest => format!("{AT_TIMESTAMP}{now_ms}"),
            Self::AtTimestamp(ms) => format!("{AT_TIMESTAMP}{ms}"),
            Self::ShardEnd => SHARD_END.to_owned(),
        }
    }

    /// Parses a stored checkpoint; `None` when it is not one this poller writes.
    pub fn parse(checkpoint: &str) -> Option<Self> {
        if checkpoint == SHARD_END {
            return Some(Self::ShardEnd);
        }
        if checkpoint == TRIM_HORIZON {
            return Some(Self::TrimHorizon);
        }
        if let Some(ms) = checkpoint.strip_prefix(AT_TIMESTAMP) {
            return ms.parse().ok().map(Self::AtTimestamp);
        }
        (!checkpoint.is_empty() && checkpoint.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self::After(checkpoint.to_owned()))
    }
}

/// A Kinesis stream ARN's parts: `arn:<partition>:kinesis:<region>:<account>:stream/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamArn {
    pub region: String,
    pub account: String,
    pub name: String,
}

impl StreamArn {
    /// Parses a stream ARN; `None` when it is not one (a consumer ARN included).
    pub fn parse(arn: &str) -> Option<Self> {
        let rest = arn.strip_prefix("arn:")?;
        let mut parts = rest.splitn(5, ':');
        let (_partition, service, region, account, resource) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let name = resource.strip_prefix("stream/")?;
        let valid_name = !name.is_empty()
            && name.len() <= 128
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        (service == "kinesis" && !region.is_empty() && !account.is_empty() && valid_name).then(|| Self {
            region: region.to_owned(),
            account: account.to_owned(),
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: &str) -> Record {
        Record {
            sequence_number: seq.into(),
            partition_key: "pk".into(),
            data: b"Hello".to_vec(),
            arrival_ms: 1_545_084_650_987,
        }
    }

    #[test]
    fn the_event_has_the_guides_shape() {
        let ctx = EventContext {
            shard_id: "shardId-000000000000".into(),
            event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s".into(),
            aws_region: "us-east-1".into(),
            invoke_identity_arn: "arn:aws:iam::123456789012:role/r".into(),
        };
        let event = event(&ctx, &[record("49545115243490985018280067714973144582180062593244200961")]);
        let r = &event["Records"][0];
        assert_eq!(r["eventID"], "shardId-000000000000:49545115243490985018280067714973144582180062593244200961");
        assert_eq!(r["eventSource"], "aws:kinesis");
        assert_eq!(r["eventVersion"], "1.0");
        assert_eq!(r["eventName"], "aws:kinesis:record");
        assert_eq!(r["invokeIdentityArn"], "arn:aws:iam::123456789012:role/r");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert_eq!(r["eventSourceARN"], "arn:aws:kinesis:us-east-1:123456789012:stream/s");
        assert_eq!(r["kinesis"]["kinesisSchemaVersion"], "1.0");
        assert_eq!(r["kinesis"]["partitionKey"], "pk");
        assert_eq!(r["kinesis"]["data"], "SGVsbG8=");
        assert_eq!(r["kinesis"]["sequenceNumber"], "49545115243490985018280067714973144582180062593244200961");
        assert_eq!(serde_json::to_string(&r["kinesis"]["approximateArrivalTimestamp"]).unwrap(), "1545084650.987");
        let size = serde_json::to_vec(&event).unwrap().len();
        assert!(
            record("49545115243490985018280067714973144582180062593244200961").event_size(ctx.fixed_size()) + 16
                >= size
        );
    }

    #[test]
    fn item_failures_name_the_lowest_failed_record() {
        let batch = [record("1"), record("2"), record("3")];
        assert_eq!(item_failures(b"null", &batch), ItemFailures::None);
        assert_eq!(item_failures(b"\"ok\"", &batch), ItemFailures::None);
        assert_eq!(item_failures(br#"{"batchItemFailures":[]}"#, &batch), ItemFailures::None);
        assert_eq!(item_failures(br#"{"batchItemFailures":null}"#, &batch), ItemFailures::None);
        assert_eq!(
            item_failures(br#"{"batchItemFailures":[{"itemIdentifier":"3"},{"itemIdentifier":"2"}]}"#, &batch),
            ItemFailures::From(1)
        );
        assert_eq!(item_failures(br#"{"batchItemFailures":[{"itemIdentifier":"9"}]}"#, &batch), ItemFailures::Invalid);
        assert_eq!(item_failures(br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#, &batch), ItemFailures::Invalid);
        assert_eq!(item_failures(br#"{"batchItemFailures":[{}]}"#, &batch), ItemFailures::Invalid);
        assert_eq!(item_failures(br#"{"batchItemFailures":"x"}"#, &batch), ItemFailures::Invalid);
    }

    #[test]
    fn checkpoints_round_trip() {
        for p in [Position::After("4954".into()), Position::TrimHorizon, Position::AtTimestamp(17), Position::ShardEnd]
        {
            assert_eq!(Position::parse(&p.checkpoint(5)), Some(p));
        }
        assert_eq!(Position::parse(&Position::Latest.checkpoint(5)), Some(Position::AtTimestamp(5)));
        assert_eq!(Position::parse(""), None);
        assert_eq!(Position::parse("AT_TIMESTAMP:x"), None);
    }

    #[test]
    fn stream_arns() {
        let arn = StreamArn::parse("arn:aws:kinesis:us-west-2:123456789012:stream/example.stream-1").unwrap();
        assert_eq!(
            (arn.region.as_str(), arn.account.as_str(), arn.name.as_str()),
            ("us-west-2", "123456789012", "example.stream-1")
        );
        assert!(StreamArn::parse("arn:aws:kinesis:us-west-2:123456789012:stream/s/consumer/c:1").is_none());
        assert!(StreamArn::parse("arn:aws:sqs:us-west-2:123456789012:q").is_none());
        assert!(StreamArn::parse("arn:aws:kinesis:us-west-2:123456789012:stream/").is_none());
    }
}
