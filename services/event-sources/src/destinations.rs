//! The runner of Event invocations: applies the function's async settings (retries, event age),
//! and sends what finished to its destination or dead-letter queue.
//!
//! Per attempt the runner reads the invoked qualifier's EventInvokeConfig (no fallback from an
//! alias or version to the unqualified function's, as on AWS) and, when an event fails for good,
//! the executed version's `DeadLetterConfig`; both are cached for [`SETTINGS_TTL`], so a change
//! applies to events run a few seconds later.
//!
//! - Too old (`MaximumEventAgeInSeconds`, capped by the queue's own age limit) before an attempt,
//!   or throttled past it: the event fails with condition `EventAgeExceeded`, without running.
//! - A function error on an attempt beyond `MaximumRetryAttempts` (capped by the retries the queue
//!   grants): the event fails with condition `RetriesExhausted`.
//! - A failed event's record goes to the on-failure destination, and the original event to the
//!   dead-letter queue (both when both are set, as on AWS); with neither it is dropped, logged and
//!   counted (`lamina_async_events_dropped_total`).
//! - A success goes to the on-success destination, if any.
//!
//! The attempt count in records (`approximateInvokeCount`) and the retry decision count every
//! attempt the queue made, throttled ones included, as the queue's own retry policy does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageAttributeValue;
use bytes::Bytes;
use lamina_async_queue::{Attempt, Event, QueueClient};
use lamina_common::ApiError;
use lamina_common::names::qualified_arn;
use lamina_common::time::now_ms;
use lamina_invoke_router::{InvokeOutcome, Invoked, RouterClient, attempt_of, event_request};
use lamina_metadata::MetadataClient;
use serde_json::{Value, json};

use crate::EventSourcesClient;
use crate::aws::QueueArn;
use crate::invoke_config::{
    ConfigKey, DEFAULT_EVENT_AGE_SECS, DEFAULT_RETRY_ATTEMPTS, Destination, InvokeConfig, LATEST,
};

/// How long a function's async settings and dead-letter queue are reused without asking again.
pub const SETTINGS_TTL: Duration = Duration::from_secs(5);

/// Entries a settings cache keeps before it is cleared (a bound, not a tuning knob).
const MAX_CACHED: usize = 10_000;

/// Deliveries remembered for a retry of the same event (see [`Pending`]).
const MAX_PENDING: usize = 10_000;

/// SQS's largest message body.
const MAX_SQS_BODY: usize = 256 * 1024;

/// The part of an error message a dead letter carries (`ErrorMessage`: "the first 1 KB").
const MAX_ERROR_MESSAGE: usize = 1024;

/// Counts deliveries to destinations and dead-letter queues that failed, by `kind`
/// (`destination`, `dead_letter`) and `outcome` (`retry`: the event is tried again later;
/// `abandoned`: the record cannot be delivered at all).
pub const DELIVERY_FAILURES: &str = "lamina_async_delivery_failures_total";

/// Runs queued events. Cheap to clone.
#[derive(Clone)]
pub struct EventRunner {
    inner: Arc<Inner>,
}

struct Inner {
    router: RouterClient,
    metadata: MetadataClient,
    client: EventSourcesClient,
    queue: QueueClient,
    region: String,
    /// Retries after a function error that the queue grants.
    queue_retries: i64,
    /// The queue's own age limit: a throttled event older than this is dropped by the queue.
    queue_max_age: Duration,
    configs: TtlCache<(String, String, String), Option<InvokeConfig>>,
    dead_letters: TtlCache<(String, String, String), Option<String>>,
    queue_urls: Mutex<HashMap<String, String>>,
    pending: Mutex<HashMap<String, Pending>>,
}

/// Deliveries of an event's final record that failed, kept so that the queue's next try of the
/// same event delivers them instead of running the function again. Held in memory only: after a
/// restart, or when another worker takes the event, the function runs again and a fresh record is
/// sent (Event invocations are at least once).
struct Pending {
    deliveries: Vec<Delivery>,
    /// What the event ends as once every delivery went through.
    then: Attempt,
    at: Instant,
}

/// One message to send.
#[derive(Clone)]
struct Delivery {
    kind: Kind,
    target: Destination,
    arn: String,
    body: String,
    /// A dead letter's message attributes.
    dead_letter: Option<DeadLetterAttributes>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Destination,
    DeadLetter,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Destination => "destination",
            Self::DeadLetter => "dead_letter",
        }
    }
}

#[derive(Clone)]
struct DeadLetterAttributes {
    request_id: String,
    error_code: u16,
    error_message: String,
}

/// Why an event failed for good.
enum Failure {
    /// Its last allowed attempt ended in a function error.
    RetriesExhausted(Invoked),
    /// Too old to be run; `status` is the HTTP status of the last refusal, if this attempt had one.
    EventAgeExceeded { status: Option<u16>, message: String },
}

/// How a delivery failed.
enum DeliveryError {
    /// Worth trying again (the service is unreachable, throttled, ...).
    Retry(String),
    /// The record can never be delivered there (too large, another tenant's function).
    Abandon(String),
}

/// The effective settings of one invoked qualifier.
struct Settings {
    config: Option<InvokeConfig>,
    retries: i64,
    max_age: Duration,
}

impl EventRunner {
    pub fn new(
        router: RouterClient,
        metadata: MetadataClient,
        client: EventSourcesClient,
        queue: QueueClient,
        region: String,
    ) -> Self {
        // The queue ends an event after its own retries and age limit whatever the runner asks,
        // so the runner's last attempt must come no later than the queue's (or the record of a
        // failure would never be sent). Over gRPC the policy is not visible: Lambda's defaults.
        let (queue_retries, queue_max_age) = match &queue {
            QueueClient::Local(q) => {
                let c = q.config();
                (i64::try_from(c.retry_delays.len()).unwrap_or(i64::MAX), c.max_event_age)
            }
            QueueClient::Grpc(_) => (DEFAULT_RETRY_ATTEMPTS, Duration::from_secs(DEFAULT_EVENT_AGE_SECS as u64)),
        };
        let inner = Inner {
            router,
            metadata,
            client,
            queue,
            region,
            queue_retries,
            queue_max_age,
            configs: TtlCache::new(),
            dead_letters: TtlCache::new(),
            queue_urls: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Runs one attempt of `event`; what the queue does next follows from the answer.
    pub async fn run(&self, event: Event) -> Attempt {
        let inner = &self.inner;
        if let Some(pending) = inner.take_pending(&event.request_id) {
            return inner.deliver_all(&event, pending.deliveries, pending.then).await;
        }
        let qualifier = event.qualifier.clone().unwrap_or_else(|| LATEST.to_owned());
        let settings = match inner.settings(&event.account_id, &event.function_name, &qualifier).await {
            Ok(s) => s,
            Err(e) => {
                // Running without knowing where a failure should go could lose its record.
                tracing::warn!(request_id = %event.request_id, "async settings unavailable, retrying later: {e}");
                return Attempt::Throttled;
            }
        };
        if event_age(&event) >= settings.max_age {
            let message = format!(
                "Event age exceeded: not run within MaximumEventAgeInSeconds ({} s)",
                settings.max_age.as_secs()
            );
            return inner.failed(&event, &settings, Failure::EventAgeExceeded { status: None, message }).await;
        }
        let request = match event_request(event.clone()) {
            Ok(r) => r,
            Err(e) => return attempt_of(Err(e)),
        };
        match inner.router.invoke(request).await {
            Ok(InvokeOutcome::Ran(ran)) if !ran.function_error => inner.succeeded(&event, &settings, ran).await,
            Ok(InvokeOutcome::Ran(ran)) => {
                if event.attempts <= settings.retries {
                    Attempt::FunctionError
                } else {
                    inner.failed(&event, &settings, Failure::RetriesExhausted(ran)).await
                }
            }
            Ok(InvokeOutcome::Queued | InvokeOutcome::Checked) => Attempt::Succeeded,
            Err(e) => {
                let status = e.status().as_u16();
                let message = e.to_string();
                let attempt = attempt_of(Err(e));
                // The queue would retry a throttle after a backoff that may overshoot the
                // function's age limit (or drop it past its own): the failure is recorded now.
                if attempt == Attempt::Throttled && event_age(&event) >= settings.max_age {
                    inner.failed(&event, &settings, Failure::EventAgeExceeded { status: Some(status), message }).await
                } else {
                    attempt
                }
            }
        }
    }
}

impl Inner {
    async fn settings(&self, account_id: &str, function_name: &str, qualifier: &str) -> Result<Settings, ApiError> {
        let key = (account_id.to_owned(), function_name.to_owned(), qualifier.to_owned());
        let config = match self.configs.get(&key) {
            Some(c) => c,
            None => {
                let k = ConfigKey {
                    account_id: account_id.to_owned(),
                    function_name: function_name.to_owned(),
                    qualifier: qualifier.to_owned(),
                };
                let c = self.client.get_invoke_config(&k).await?;
                self.configs.put(key, c.clone());
                c
            }
        };
        let retries =
            config.as_ref().map_or(DEFAULT_RETRY_ATTEMPTS, InvokeConfig::retry_attempts).min(self.queue_retries);
        let age_secs = config.as_ref().map_or(DEFAULT_EVENT_AGE_SECS, InvokeConfig::event_age_secs);
        let max_age = Duration::from_secs(u64::try_from(age_secs).unwrap_or(0)).min(self.queue_max_age);
        Ok(Settings { config, retries, max_age })
    }

    /// The dead-letter queue of one version (`$LATEST` or a number); `Err` when unknown now.
    async fn dead_letter(&self, account_id: &str, name: &str, version: &str) -> Result<Option<String>, ApiError> {
        let key = (account_id.to_owned(), name.to_owned(), version.to_owned());
        if let Some(found) = self.dead_letters.get(&key) {
            return Ok(found);
        }
        let row = self.metadata.get_version(account_id, name, version).await?;
        let arn = row.and_then(|r| r.dead_letter_arn);
        self.dead_letters.put(key, arn.clone());
        Ok(arn)
    }

    /// The ARN the event addressed, qualified as AWS reports it (`:$LATEST` when unqualified).
    fn invoked_arn(&self, event: &Event) -> String {
        let qualifier = event.qualifier.as_deref().unwrap_or(LATEST);
        qualified_arn(&self.region, &event.account_id, &event.function_name, qualifier)
    }

    async fn succeeded(&self, event: &Event, settings: &Settings, ran: Invoked) -> Attempt {
        let Some(arn) = settings.config.as_ref().and_then(|c| c.on_success.clone()) else {
            return Attempt::Succeeded;
        };
        let body = self.record(event, "Success", event.attempts, Some(&ran)).to_string();
        match self.delivery(Kind::Destination, &arn, body, None) {
            Some(d) => self.deliver_all(event, vec![d], Attempt::Succeeded).await,
            None => Attempt::Succeeded,
        }
    }

    async fn failed(&self, event: &Event, settings: &Settings, failure: Failure) -> Attempt {
        let mut deliveries = Vec::new();
        if let Some(arn) = settings.config.as_ref().and_then(|c| c.on_failure.clone()) {
            let body = match &failure {
                Failure::RetriesExhausted(ran) => self.record(event, "RetriesExhausted", event.attempts, Some(ran)),
                Failure::EventAgeExceeded { .. } => {
                    self.record(event, "EventAgeExceeded", event.attempts.saturating_sub(1), None)
                }
            };
            deliveries.extend(self.delivery(Kind::Destination, &arn, body.to_string(), None));
        }
        // The executed version's dead-letter queue; for an event that never ran, the version
        // its qualifier names now.
        let version = match &failure {
            Failure::RetriesExhausted(ran) => Some(ran.executed_version.clone()),
            Failure::EventAgeExceeded { .. } => {
                match self
                    .metadata
                    .resolve_version(&event.account_id, &event.function_name, event.qualifier.as_deref())
                    .await
                {
                    Ok(resolved) => resolved.map(|r| r.row.version),
                    Err(e) => {
                        tracing::warn!(request_id = %event.request_id, "resolve the version of an expired event: {e}");
                        return Attempt::Throttled;
                    }
                }
            }
        };
        if let Some(version) = version {
            match self.dead_letter(&event.account_id, &event.function_name, &version).await {
                Ok(Some(arn)) => {
                    let (error_code, error_message) = match &failure {
                        Failure::RetriesExhausted(ran) => (200, error_message(&ran.payload)),
                        Failure::EventAgeExceeded { status, message } => (status.unwrap_or(429), message.clone()),
                    };
                    let attributes =
                        DeadLetterAttributes { request_id: event.request_id.clone(), error_code, error_message };
                    deliveries.extend(self.delivery(Kind::DeadLetter, &arn, event.payload.clone(), Some(attributes)));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(request_id = %event.request_id, "read the dead-letter queue of a failed event: {e}");
                    return Attempt::Throttled;
                }
            }
        }
        if deliveries.is_empty() {
            let condition = match failure {
                Failure::RetriesExhausted(_) => "RetriesExhausted",
                Failure::EventAgeExceeded { .. } => "EventAgeExceeded",
            };
            tracing::info!(
                request_id = %event.request_id,
                function = %self.invoked_arn(event),
                condition,
                "async event failed with no on-failure destination or dead-letter queue: dropped"
            );
            return Attempt::Dropped;
        }
        self.deliver_all(event, deliveries, Attempt::Delivered).await
    }

    /// The invocation record AWS sends to destinations.
    fn record(&self, event: &Event, condition: &str, invoke_count: i64, ran: Option<&Invoked>) -> Value {
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut record = json!({
            "version": "1.0",
            "timestamp": timestamp,
            "requestContext": {
                "requestId": event.request_id,
                "functionArn": self.invoked_arn(event),
                "condition": condition,
                "approximateInvokeCount": invoke_count,
            },
            "requestPayload": json_or_text(event.payload.as_bytes()),
        });
        if let Some(ran) = ran {
            let mut context = json!({ "statusCode": 200, "executedVersion": ran.executed_version });
            if ran.function_error {
                context["functionError"] = json!("Unhandled");
            }
            record["responseContext"] = context;
            record["responsePayload"] = json_or_text(&ran.payload);
        }
        record
    }

    /// A delivery to `arn`; `None` (logged and counted) when the ARN is nothing Lamina delivers
    /// to (the API refuses such settings; this covers rows written before a rule changed).
    fn delivery(
        &self,
        kind: Kind,
        arn: &str,
        body: String,
        dead_letter: Option<DeadLetterAttributes>,
    ) -> Option<Delivery> {
        match Destination::parse(arn) {
            Ok(target) => Some(Delivery { kind, target, arn: arn.to_owned(), body, dead_letter }),
            Err(_) => {
                metrics::counter!(DELIVERY_FAILURES, "kind" => kind.label(), "outcome" => "abandoned").increment(1);
                tracing::warn!(arn, "cannot deliver an async invocation record there");
                None
            }
        }
    }

    /// Sends every delivery; `then` once all went through or were abandoned. A delivery that can
    /// be retried makes the event come back later (`Throttled`) rather than lose its record: the
    /// queue keeps it durably and tries again with backoff until the event is too old, and the
    /// deliveries still owed are remembered for that next try.
    async fn deliver_all(&self, event: &Event, deliveries: Vec<Delivery>, then: Attempt) -> Attempt {
        let mut owed = Vec::new();
        for d in deliveries {
            match self.deliver(event, &d).await {
                Ok(()) => {}
                Err(DeliveryError::Abandon(why)) => {
                    metrics::counter!(DELIVERY_FAILURES, "kind" => d.kind.label(), "outcome" => "abandoned")
                        .increment(1);
                    tracing::warn!(request_id = %event.request_id, arn = %d.arn, "async invocation record not deliverable: {why}");
                }
                Err(DeliveryError::Retry(why)) => {
                    metrics::counter!(DELIVERY_FAILURES, "kind" => d.kind.label(), "outcome" => "retry").increment(1);
                    tracing::warn!(request_id = %event.request_id, arn = %d.arn, "async invocation record not delivered, retrying later: {why}");
                    owed.push(d);
                }
            }
        }
        if owed.is_empty() {
            return then;
        }
        self.remember(&event.request_id, Pending { deliveries: owed, then, at: Instant::now() });
        Attempt::Throttled
    }

    async fn deliver(&self, event: &Event, d: &Delivery) -> Result<(), DeliveryError> {
        match &d.target {
            Destination::Function { region, account_id, name, qualifier } => {
                // The API takes only the owner's own functions; a row that says otherwise must not
                // make one tenant invoke another's function.
                if region != &self.region || account_id != &event.account_id {
                    return Err(DeliveryError::Abandon("another account's or region's function".into()));
                }
                let request_id = lamina_common::ids::random_uuid().to_string();
                let payload = Bytes::from(d.body.clone());
                self.queue
                    .enqueue(&request_id, account_id, name, qualifier.as_deref(), &payload)
                    .await
                    .map_err(|e| DeliveryError::Retry(format!("enqueue: {e}")))
            }
            Destination::Queue(arn) => self.send_sqs(arn, d).await,
        }
    }

    async fn send_sqs(&self, arn: &QueueArn, d: &Delivery) -> Result<(), DeliveryError> {
        if d.body.len() > MAX_SQS_BODY {
            return Err(DeliveryError::Abandon(format!("{} bytes is over SQS's message size limit", d.body.len())));
        }
        let client = crate::aws::sqs().await;
        let url = self.queue_url(&client, arn).await.map_err(|e| DeliveryError::Retry(format!("{e:#}")))?;
        let mut send = client.send_message().queue_url(&url).message_body(&d.body);
        if let Some(a) = &d.dead_letter {
            let string = |v: &str| MessageAttributeValue::builder().data_type("String").string_value(v).build();
            let number =
                MessageAttributeValue::builder().data_type("Number").string_value(a.error_code.to_string()).build();
            let attributes = [
                ("RequestID", string(&a.request_id)),
                ("ErrorCode", number),
                ("ErrorMessage", string(&a.error_message)),
            ];
            for (name, value) in attributes {
                let value = value.map_err(|e| DeliveryError::Abandon(format!("message attribute {name}: {e}")))?;
                send = send.message_attributes(name, value);
            }
        }
        match send.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                // The queue may have been deleted and created again under a new URL.
                self.lock_urls().remove(&arn_key(arn));
                Err(DeliveryError::Retry(format!("SendMessage: {}", aws_sdk_sqs::error::DisplayErrorContext(e))))
            }
        }
    }

    async fn queue_url(&self, client: &aws_sdk_sqs::Client, arn: &QueueArn) -> anyhow::Result<String> {
        if let Some(url) = self.lock_urls().get(&arn_key(arn)) {
            return Ok(url.clone());
        }
        let url = crate::aws::queue_url(client, arn).await?;
        let mut urls = self.lock_urls();
        if urls.len() >= MAX_CACHED {
            urls.clear();
        }
        urls.insert(arn_key(arn), url.clone());
        Ok(url)
    }

    fn lock_urls(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.queue_urls.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take_pending(&self, request_id: &str) -> Option<Pending> {
        self.lock_pending().remove(request_id)
    }

    fn remember(&self, request_id: &str, pending: Pending) {
        let mut map = self.lock_pending();
        // An event the queue gave up on (too old) never comes back for its entry.
        let stale = self.queue_max_age + Duration::from_secs(3600);
        map.retain(|_, p| p.at.elapsed() < stale);
        if map.len() < MAX_PENDING {
            map.insert(request_id.to_owned(), pending);
        }
    }
}

fn arn_key(arn: &QueueArn) -> String {
    format!("{}:{}:{}", arn.region, arn.account, arn.name)
}

/// How long ago the event was accepted.
fn event_age(event: &Event) -> Duration {
    Duration::from_millis(u64::try_from(now_ms().saturating_sub(event.created_at)).unwrap_or(0))
}

/// A payload as JSON when it is JSON, else as a string.
fn json_or_text(raw: &[u8]) -> Value {
    serde_json::from_slice(raw).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into_owned()))
}

/// A dead letter's `ErrorMessage`: the error document's `errorMessage` (or the document itself),
/// cut to its first KB.
fn error_message(payload: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(doc)) => match doc.get("errorMessage") {
            Some(Value::String(m)) => m.clone(),
            _ => String::from_utf8_lossy(payload).into_owned(),
        },
        _ => String::from_utf8_lossy(payload).into_owned(),
    };
    truncate(text, MAX_ERROR_MESSAGE)
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// A small map whose entries expire after [`SETTINGS_TTL`].
struct TtlCache<K, V>(Mutex<HashMap<K, (Instant, V)>>);

impl<K: std::hash::Hash + Eq, V: Clone> TtlCache<K, V> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, key: &K) -> Option<V> {
        self.lock().get(key).filter(|(at, _)| at.elapsed() < SETTINGS_TTL).map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut map = self.lock();
        if map.len() >= MAX_CACHED {
            map.clear();
        }
        map.insert(key, (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_the_documents_message_cut_to_a_kilobyte() {
        assert_eq!(error_message(br#"{"errorMessage":"boom","errorType":"ValueError"}"#), "boom");
        assert_eq!(error_message(b"not json"), "not json");
        let long = format!(r#"{{"errorMessage":"{}"}}"#, "é".repeat(1000));
        let cut = error_message(long.as_bytes());
        assert!(cut.len() <= MAX_ERROR_MESSAGE && cut.len() >= MAX_ERROR_MESSAGE - 1, "{}", cut.len());
    }

    #[test]
    fn payloads_are_json_when_they_can_be() {
        assert_eq!(json_or_text(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(json_or_text(b"plain"), json!("plain"));
    }
}
