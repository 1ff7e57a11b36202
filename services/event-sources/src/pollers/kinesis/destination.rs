//! The mapping's on-failure destination (an SQS queue): what a discarded batch leaves behind, in
//! the shape Lambda sends for Kinesis (`requestContext`, `responseContext`, `KinesisBatchInfo`;
//! the records themselves stay in the stream and are read from there by sequence number).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tracing::{error, warn};

use super::event::Record;
use super::{backoff, now_ms};
use crate::aws::{QueueArn, queue_url};

/// Sends to the destination are tried this many times before the record is given up (logged and
/// counted): a stream's progress does not wait on its dead-letter queue.
const SEND_ATTEMPTS: u32 = 5;

/// Why records were discarded (`requestContext.condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Self::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// A discarded batch as the destination receives it.
pub(crate) struct Discarded<'a> {
    pub records: &'a [Record],
    pub condition: Condition,
    pub function_arn: &'a str,
    pub shard_id: &'a str,
    pub stream_arn: &'a str,
    /// Invocations the records had.
    pub invocations: u32,
    /// The last invocation failed in the function (as opposed to never reaching it).
    pub function_error: bool,
}

/// The destination ARN of the mapping's `DestinationConfig.OnFailure`, if any.
pub(crate) fn on_failure(config: Option<&Value>) -> Option<String> {
    config?.pointer("/OnFailure/Destination").and_then(Value::as_str).filter(|d| !d.is_empty()).map(str::to_owned)
}

fn timestamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The record Lambda sends for a discarded Kinesis batch.
pub(crate) fn document(d: &Discarded<'_>, request_id: &str, now_ms: i64) -> Value {
    let first = d.records.first();
    let last = d.records.last();
    let executed =
        d.function_arn.rsplit_once(":function:").and_then(|(_, f)| f.split_once(':')).map_or("$LATEST", |(_, q)| q);
    let response = if d.function_error {
        json!({ "statusCode": 200, "executedVersion": executed, "functionError": "Unhandled" })
    } else {
        json!({ "statusCode": 0, "executedVersion": executed })
    };
    json!({
        "requestContext": {
            "requestId": request_id,
            "functionArn": d.function_arn,
            "condition": d.condition.as_str(),
            "approximateInvokeCount": d.invocations,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": timestamp(now_ms),
        "KinesisBatchInfo": {
            "shardId": d.shard_id,
            "startSequenceNumber": first.map(|r| r.sequence_number.as_str()),
            "endSequenceNumber": last.map(|r| r.sequence_number.as_str()),
            "approximateArrivalOfFirstRecord": first.map(|r| timestamp(r.arrival_ms)),
            "approximateArrivalOfLastRecord": last.map(|r| timestamp(r.arrival_ms)),
            "batchSize": d.records.len(),
            "streamArn": d.stream_arn,
        },
    })
}

/// Sends the record of `discarded` to the SQS queue `destination`, retrying a few times; a record
/// that cannot be sent is logged with what it held.
pub(crate) async fn send(destination: &str, discarded: &Discarded<'_>, stop: &tokio_util::sync::CancellationToken) {
    let body = document(discarded, &lamina_common::ids::random_uuid().to_string(), now_ms()).to_string();
    let Some(arn) = QueueArn::parse(destination) else {
        error!(destination, record = %body, "the on-failure destination is not an SQS queue ARN; the record is dropped");
        return;
    };
    let client = crate::aws::sqs().await;
    let mut last_error = String::new();
    for attempt in 1..=SEND_ATTEMPTS {
        let sent = async {
            let url = queue_url(&client, &arn).await?;
            client
                .send_message()
                .queue_url(url)
                .message_body(&body)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("SendMessage: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
            anyhow::Ok(())
        };
        match tokio::time::timeout(Duration::from_secs(30), sent).await {
            Ok(Ok(())) => return,
            Ok(Err(err)) => last_error = format!("{err:#}"),
            Err(_) => last_error = "timed out".to_owned(),
        }
        warn!(destination, attempt, "sending to the on-failure destination failed: {last_error}");
        tokio::select! {
            _ = tokio::time::sleep(backoff(Duration::from_millis(500), Duration::from_secs(10), attempt)) => {}
            _ = stop.cancelled() => break,
        }
    }
    metrics::counter!(crate::metrics::DESTINATION_FAILURES_TOTAL, "source" => "kinesis").increment(1);
    error!(destination, record = %body, "the on-failure record could not be sent ({last_error}); it is dropped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_lambdas_shape() {
        let records = [
            Record {
                sequence_number: "1".into(),
                partition_key: "k".into(),
                data: vec![],
                arrival_ms: 1_573_691_884_835,
            },
            Record {
                sequence_number: "2".into(),
                partition_key: "k".into(),
                data: vec![],
                arrival_ms: 1_573_691_885_580,
            },
        ];
        let d = Discarded {
            records: &records,
            condition: Condition::RetryAttemptsExhausted,
            function_arn: "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
            shard_id: "shardId-000000000001",
            stream_arn: "arn:aws:kinesis:us-east-2:123456789012:stream/mystream",
            invocations: 3,
            function_error: true,
        };
        let doc = document(&d, "req", 1_573_691_886_021);
        assert_eq!(doc["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(doc["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(doc["responseContext"]["functionError"], "Unhandled");
        assert_eq!(doc["responseContext"]["executedVersion"], "$LATEST");
        assert_eq!(doc["timestamp"], "2019-11-14T00:38:06.021Z");
        let info = &doc["KinesisBatchInfo"];
        assert_eq!(info["startSequenceNumber"], "1");
        assert_eq!(info["endSequenceNumber"], "2");
        assert_eq!(info["approximateArrivalOfFirstRecord"], "2019-11-14T00:38:04.835Z");
        assert_eq!(info["batchSize"], 2);
        assert_eq!(info["streamArn"], "arn:aws:kinesis:us-east-2:123456789012:stream/mystream");
        assert_eq!(
            on_failure(Some(&json!({"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:1:q"}}))).as_deref(),
            Some("arn:aws:sqs:us-east-1:1:q")
        );
        assert_eq!(on_failure(Some(&json!({"OnFailure": {}}))), None);
    }
}
