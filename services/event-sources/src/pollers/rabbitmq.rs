//! The RabbitMQ poller (Amazon MQ for RabbitMQ mappings: `arn:aws:mq:...` with `Queues: [name]`).
//!
//! The broker is the one this installation names in `LAMINA_AMQP_URL` (`amqp://user:pass@host:port/vhost`):
//! one broker per installation, whatever broker the mapping's ARN names, since Lamina has no Amazon MQ
//! API to resolve it and no Secrets Manager for the mapping's `BASIC_AUTH` secret. A `VIRTUAL_HOST`
//! source access configuration picks the virtual host, as on AWS.
//!
//! The poller consumes the queue with a prefetch of `BatchSize`, gathers up to `BatchSize` deliveries
//! within `MaximumBatchingWindowInSeconds`, invokes the function with the `aws:rmq` event, then acks
//! the batch (one multiple ack up to its last delivery tag) after a success or nacks it with requeue
//! after a failure, so the broker delivers it again (`redelivered: true`). Deliveries not acked when
//! the poller stops or the connection drops go back to the queue by AMQP's own rules. An unreachable
//! broker is retried with backoff.

use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use super::PollContext;
use super::sqs::{
    Backoff, MAX_PAYLOAD, ProcessingResults, RESULT_FUNCTION_FAILED, RESULT_OK, RESULT_UNREACHABLE, sleep_or_stop,
};
use crate::invoker::BatchResult;

/// The environment variable naming the installation's broker.
pub const AMQP_URL_ENV: &str = "LAMINA_AMQP_URL";
/// How long connecting may take before the broker counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the mapping's queue and invokes its function with batches until `ctx.stop`.
pub async fn run(ctx: PollContext) -> anyhow::Result<()> {
    let results = ProcessingResults::new(&ctx);
    let queue = ctx
        .mapping
        .queues
        .as_ref()
        .and_then(|q| q.first())
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("mapping {}: no queue to read", ctx.mapping.uuid))?;
    let uri = match broker_uri(&ctx) {
        Ok(uri) => uri,
        Err(err) => {
            // Nothing changes until the operator sets the variable and restarts: say so once, idle.
            tracing::error!(mapping = %ctx.mapping.uuid, "RabbitMQ poller cannot start: {err:#}");
            results.set(RESULT_UNREACHABLE).await;
            ctx.stop.cancelled().await;
            return Ok(());
        }
    };
    let poller = Poller {
        batch_size: usize::try_from(ctx.mapping.batch_size).unwrap_or(1).clamp(1, 10_000),
        window: Duration::from_secs(u64::try_from(ctx.mapping.maximum_batching_window_in_seconds).unwrap_or(0)),
        key: format!("{queue}::{}", uri.vhost),
        queue,
        source: ctx.mapping.event_source_arn.clone().unwrap_or_default(),
        results,
        ctx,
    };
    tracing::info!(mapping = %poller.ctx.mapping.uuid, queue = %poller.key, "RabbitMQ poller started");
    let mut backoff = Backoff::default();
    loop {
        match poller.session(&uri, &mut backoff).await {
            Ok(()) => break,
            Err(err) => {
                tracing::warn!(mapping = %poller.ctx.mapping.uuid, queue = %poller.key, "RabbitMQ: {err:#}");
                poller.results.set(RESULT_UNREACHABLE).await;
                if !sleep_or_stop(&poller.ctx.stop, backoff.next()).await {
                    break;
                }
            }
        }
    }
    tracing::info!(mapping = %poller.ctx.mapping.uuid, "RabbitMQ poller stopped");
    Ok(())
}

/// The broker's URI from [`AMQP_URL_ENV`], with the mapping's `VIRTUAL_HOST` if it names one.
fn broker_uri(ctx: &PollContext) -> anyhow::Result<AMQPUri> {
    let url = std::env::var(AMQP_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .with_context(|| format!("{AMQP_URL_ENV} is not set (the installation's RabbitMQ broker)"))?;
    let mut uri: AMQPUri = url.parse().map_err(|e| anyhow::anyhow!("{AMQP_URL_ENV}: {e}"))?;
    let vhost = ctx.mapping.source_access_configurations.iter().flatten().find_map(|c| {
        (c.get("Type").and_then(Value::as_str) == Some("VIRTUAL_HOST"))
            .then(|| c.get("URI").and_then(Value::as_str))
            .flatten()
    });
    if let Some(vhost) = vhost {
        uri.vhost = vhost.to_owned();
    }
    Ok(uri)
}

struct Poller {
    ctx: PollContext,
    queue: String,
    /// `<queue>::<vhost>`, the key of the event's `rmqMessagesByQueue`.
    key: String,
    /// The mapping's broker ARN, as the event names it.
    source: String,
    batch_size: usize,
    window: Duration,
    results: ProcessingResults,
}

/// What a failed batch asks of the poller.
enum Next {
    Consume,
    Backoff,
}

impl Poller {
    /// One connection: consumes until stopped (`Ok`) or until the connection or channel fails.
    async fn session(&self, uri: &AMQPUri, backoff: &mut Backoff) -> anyhow::Result<()> {
        let connect = Connection::connect_uri(uri.clone(), ConnectionProperties::default());
        let connection = tokio::select! {
            _ = self.ctx.stop.cancelled() => return Ok(()),
            c = tokio::time::timeout(CONNECT_TIMEOUT, connect) => c
                .map_err(|_| anyhow::anyhow!("connect to {}:{}: timed out", uri.authority.host, uri.authority.port))?
                .with_context(|| format!("connect to {}:{}", uri.authority.host, uri.authority.port))?,
        };
        let consumed = self.consume(&connection, backoff).await;
        // Closing hands unacked deliveries back to the queue at once.
        if let Err(err) = connection.close(200, "poller stopped").await {
            tracing::debug!(mapping = %self.ctx.mapping.uuid, "close AMQP connection: {err}");
        }
        consumed
    }

    async fn consume(&self, connection: &Connection, backoff: &mut Backoff) -> anyhow::Result<()> {
        let channel = connection.create_channel().await.context("open a channel")?;
        let prefetch = u16::try_from(self.batch_size).unwrap_or(u16::MAX);
        channel.basic_qos(prefetch, BasicQosOptions::default()).await.context("set the prefetch count")?;
        let tag = format!("lamina-{}", self.ctx.mapping.uuid);
        let mut consumer = channel
            .basic_consume(&self.queue, &tag, BasicConsumeOptions::default(), FieldTable::default())
            .await
            .with_context(|| format!("consume queue {}", self.key))?;
        backoff.reset();
        let mut invoke_backoff = Backoff::default();
        let mut held = None;
        loop {
            let first = match held.take() {
                Some(d) => d,
                None => tokio::select! {
                    _ = self.ctx.stop.cancelled() => return Ok(()),
                    d = consumer.next() => next_delivery(d)?,
                },
            };
            let Some((batch, rest)) = self.gather(first, &mut consumer).await? else { return Ok(()) };
            held = rest;
            match self.process(&channel, &batch).await? {
                Next::Consume => invoke_backoff.reset(),
                Next::Backoff => {
                    if !sleep_or_stop(&self.ctx.stop, invoke_backoff.next()).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Gathers deliveries after `first` until the batch is full, the window has passed or the
    /// payload limit is near; returns the batch and a delivery held over for the next one. `None`
    /// once stopped.
    async fn gather(
        &self,
        first: Delivery,
        consumer: &mut Consumer,
    ) -> anyhow::Result<Option<(Vec<(Delivery, Vec<u8>)>, Option<Delivery>)>> {
        let deadline = Instant::now() + self.window;
        let first_json = message_json(&first)?;
        let mut bytes = first_json.len() + 1;
        let mut batch = vec![(first, first_json)];
        while batch.len() < self.batch_size {
            let next = if Instant::now() >= deadline {
                // Without a window (or past it), what the broker already sent still joins the batch.
                match consumer.next().now_or_never() {
                    Some(d) => next_delivery(d)?,
                    None => break,
                }
            } else {
                tokio::select! {
                    _ = self.ctx.stop.cancelled() => return Ok(None),
                    _ = tokio::time::sleep_until(deadline) => continue,
                    d = consumer.next() => next_delivery(d)?,
                }
            };
            let json = message_json(&next)?;
            if bytes + json.len() + 1 > MAX_PAYLOAD - 1024 {
                return Ok(Some((batch, Some(next))));
            }
            bytes += json.len() + 1;
            batch.push((next, json));
        }
        Ok(Some((batch, None)))
    }

    /// Invokes the function with the batch, then acks it (success) or nacks it with requeue.
    async fn process(&self, channel: &Channel, batch: &[(Delivery, Vec<u8>)]) -> anyhow::Result<Next> {
        let Some(last) = batch.last().map(|(d, _)| d.delivery_tag) else { return Ok(Next::Consume) };
        let payload = self.event(batch);
        metrics::counter!(crate::metrics::RECORDS_TOTAL, "source" => "rabbitmq").increment(batch.len() as u64);
        let outcome = self.ctx.invoker.invoke(&self.ctx.account_id, &self.ctx.mapping.function_arn, payload).await;
        let uuid = &self.ctx.mapping.uuid;
        let (next, kind) = match outcome {
            BatchResult::Succeeded(_) => {
                channel
                    .basic_ack(last, BasicAckOptions { multiple: true })
                    .await
                    .context("ack the batch (it will be delivered again)")?;
                self.results.set(RESULT_OK).await;
                return Ok(Next::Consume);
            }
            BatchResult::FunctionError(error) => {
                tracing::info!(mapping = %uuid, "the function failed a batch of {}: {}", batch.len(), String::from_utf8_lossy(&error));
                (Next::Backoff, "function_error")
            }
            BatchResult::Retryable(why) => {
                tracing::info!(mapping = %uuid, "batch invoke throttled or refused for now: {why}");
                (Next::Backoff, "retryable")
            }
            BatchResult::Failed(why) => {
                tracing::warn!(mapping = %uuid, "batch invoke failed: {why}");
                (Next::Backoff, "failed")
            }
        };
        metrics::counter!(crate::metrics::BATCH_ERRORS_TOTAL, "source" => "rabbitmq", "kind" => kind).increment(1);
        self.results.set(RESULT_FUNCTION_FAILED).await;
        channel
            .basic_nack(last, BasicNackOptions { multiple: true, requeue: true })
            .await
            .context("nack the failed batch")?;
        Ok(next)
    }

    /// The `aws:rmq` event: `{"eventSource","eventSourceArn","rmqMessagesByQueue":{"<queue>::<vhost>":[...]}}`.
    fn event(&self, batch: &[(Delivery, Vec<u8>)]) -> Bytes {
        let source = serde_json::to_string(&self.source).unwrap_or_else(|_| "\"\"".into());
        let key = serde_json::to_string(&self.key).unwrap_or_else(|_| "\"\"".into());
        let mut out = Vec::with_capacity(batch.iter().map(|(_, j)| j.len() + 1).sum::<usize>() + 256);
        out.extend_from_slice(b"{\"eventSource\":\"aws:rmq\",\"eventSourceArn\":");
        out.extend_from_slice(source.as_bytes());
        out.extend_from_slice(b",\"rmqMessagesByQueue\":{");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b":[");
        for (i, (_, json)) in batch.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(json);
        }
        out.extend_from_slice(b"]}}");
        Bytes::from(out)
    }
}

/// The consumer's next delivery, or why there is none (the channel or connection closed).
fn next_delivery(next: Option<lapin::Result<Delivery>>) -> anyhow::Result<Delivery> {
    match next {
        Some(Ok(d)) => Ok(d),
        Some(Err(err)) => Err(err).context("consume"),
        None => anyhow::bail!("the broker cancelled the consumer"),
    }
}

/// One message of the event, as Lambda sends it.
#[derive(Serialize)]
struct Message<'a> {
    #[serde(rename = "basicProperties")]
    basic_properties: Properties<'a>,
    redelivered: bool,
    /// The body, base64.
    data: String,
}

/// `basicProperties`: every AMQP property, null when the message has none, and the body's size.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Properties<'a> {
    content_type: Option<&'a str>,
    content_encoding: Option<&'a str>,
    headers: Option<Value>,
    delivery_mode: Option<u8>,
    priority: Option<u8>,
    correlation_id: Option<&'a str>,
    reply_to: Option<&'a str>,
    expiration: Option<&'a str>,
    message_id: Option<&'a str>,
    timestamp: Option<String>,
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    user_id: Option<&'a str>,
    app_id: Option<&'a str>,
    cluster_id: Option<&'a str>,
    body_size: usize,
}

fn message_json(delivery: &Delivery) -> anyhow::Result<Vec<u8>> {
    let message = Message {
        basic_properties: properties(&delivery.properties, delivery.data.len()),
        redelivered: delivery.redelivered,
        data: base64::engine::general_purpose::STANDARD.encode(&delivery.data),
    };
    serde_json::to_vec(&message).context("encode a message")
}

fn properties(p: &BasicProperties, body_size: usize) -> Properties<'_> {
    Properties {
        content_type: p.content_type().as_ref().map(|s| s.as_str()),
        content_encoding: p.content_encoding().as_ref().map(|s| s.as_str()),
        headers: p.headers().as_ref().map(table),
        delivery_mode: *p.delivery_mode(),
        priority: *p.priority(),
        correlation_id: p.correlation_id().as_ref().map(|s| s.as_str()),
        reply_to: p.reply_to().as_ref().map(|s| s.as_str()),
        expiration: p.expiration().as_ref().map(|s| s.as_str()),
        message_id: p.message_id().as_ref().map(|s| s.as_str()),
        timestamp: p.timestamp().map(timestamp),
        kind: p.kind().as_ref().map(|s| s.as_str()),
        user_id: p.user_id().as_ref().map(|s| s.as_str()),
        app_id: p.app_id().as_ref().map(|s| s.as_str()),
        cluster_id: p.cluster_id().as_ref().map(|s| s.as_str()),
        body_size,
    }
}

/// AMQP timestamps (seconds) as Lambda's Java poller prints dates: `Jan 1, 1970, 12:33:41 AM` (UTC).
fn timestamp(secs: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0)
        .map(|t| t.format("%b %-d, %Y, %-I:%M:%S %p").to_string())
        .unwrap_or_default()
}

fn table(t: &FieldTable) -> Value {
    Value::Object(t.inner().iter().map(|(k, v)| (k.to_string(), field(v))).collect())
}

/// A header value as Lambda's (Java) poller serializes it: strings as `{"bytes": [...]}` (signed
/// bytes, Java's), numbers and booleans as such, tables and arrays nested.
fn field(v: &AMQPValue) -> Value {
    let bytes = |b: &[u8]| Value::Array(b.iter().map(|&x| Value::from(x as i8)).collect());
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Float(n) => serde_json::Number::from_f64(f64::from(*n)).map_or(Value::Null, Value::Number),
        AMQPValue::Double(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        AMQPValue::DecimalValue(d) => serde_json::Number::from_f64(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
            .map_or(Value::Null, Value::Number),
        AMQPValue::ShortString(s) => Value::String(s.to_string()),
        AMQPValue::LongString(s) => serde_json::json!({ "bytes": bytes(s.as_bytes()) }),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(field).collect()),
        AMQPValue::Timestamp(t) => Value::String(timestamp(*t)),
        AMQPValue::FieldTable(t) => table(t),
        AMQPValue::ByteArray(b) => bytes(b.as_slice()),
        AMQPValue::Void => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_have_lambdas_shape() {
        let mut headers = FieldTable::default();
        headers.insert("header1".into(), AMQPValue::LongString("value1".into()));
        headers.insert("numberInHeader".into(), AMQPValue::LongInt(10));
        let p = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_headers(headers)
            .with_delivery_mode(1)
            .with_priority(34)
            .with_expiration("60000".into())
            .with_timestamp(2021)
            .with_user_id("AIDACKCEVSQ6C2EXAMPLE".into());
        let json = serde_json::to_value(properties(&p, 80)).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({
                "contentType": "text/plain",
                "contentEncoding": null,
                "headers": {
                    "header1": {"bytes": [118, 97, 108, 117, 101, 49]},
                    "numberInHeader": 10
                },
                "deliveryMode": 1,
                "priority": 34,
                "correlationId": null,
                "replyTo": null,
                "expiration": "60000",
                "messageId": null,
                "timestamp": "Jan 1, 1970, 12:33:41 AM",
                "type": null,
                "userId": "AIDACKCEVSQ6C2EXAMPLE",
                "appId": null,
                "clusterId": null,
                "bodySize": 80
            })
        );
    }

    #[test]
    fn header_strings_are_javas_signed_bytes() {
        assert_eq!(field(&AMQPValue::LongString("é".into())), serde_json::json!({"bytes": [-61, -87]}));
    }
}
