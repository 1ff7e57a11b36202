//! The requests of Create/UpdateEventSourceMapping and their checks: model constraints first
//! (`ValidationException`), then what each source kind accepts (`InvalidParameterValueException`),
//! with AWS's wording where AWS's is known. Pure functions: the frontend runs them before it asks
//! the metadata service whether the function exists, the store again inside its transaction.

use lamina_common::names::{FunctionRef, Violations};
use lamina_common::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::EventSourceMapping;

/// The EventSourceArn pattern as AWS prints it.
pub const EVENT_SOURCE_ARN_PATTERN: &str = r"arn:aws:([a-zA-Z0-9\-])+:([a-z]{2}-[a-z]+-\d{1})?:(\d{12})?:(.*)";
const STARTING_POSITIONS: &str = "[LATEST, AT_TIMESTAMP, TRIM_HORIZON]";
const REPORT_BATCH_ITEM_FAILURES: &str = "ReportBatchItemFailures";
/// `StateTransitionReason` of user changes: the stream sources' wording and the newer sources'.
pub const USER_ACTION: &str = "User action";
pub const USER_INITIATED: &str = "USER_INITIATED";
/// `LastProcessingResult` until a poller reports.
pub const NO_RECORDS_PROCESSED: &str = "No records processed";

/// Where a mapping reads from, by the service of its ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceKind {
    /// `arn:aws:kinesis:<region>:<account>:stream/<name>`.
    Kinesis,
    /// `arn:aws:sqs:<region>:<account>:<queue>`.
    Sqs,
    /// `arn:aws:mq:<region>:<account>:broker:<name>:<id>` (RabbitMQ).
    Mq,
}

impl SourceKind {
    /// The kind of an event source ARN; `None` for services Lamina does not poll.
    pub fn of(arn: &str) -> Option<Self> {
        let service = arn.strip_prefix("arn:aws:")?.split(':').next()?;
        match service {
            "kinesis" => Some(Self::Kinesis),
            "sqs" => Some(Self::Sqs),
            "mq" => Some(Self::Mq),
            _ => None,
        }
    }

    fn default_batch_size(self) -> i64 {
        match self {
            Self::Kinesis | Self::Mq => 100,
            Self::Sqs => 10,
        }
    }

    pub(crate) fn transition_reason(self) -> &'static str {
        match self {
            Self::Kinesis => USER_ACTION,
            Self::Sqs | Self::Mq => USER_INITIATED,
        }
    }
}

/// The configuration fields Create and Update share.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Settings {
    pub batch_size: Option<i64>,
    pub maximum_batching_window_in_seconds: Option<i64>,
    pub parallelization_factor: Option<i64>,
    pub destination_config: Option<Value>,
    pub maximum_record_age_in_seconds: Option<i64>,
    pub bisect_batch_on_function_error: Option<bool>,
    pub maximum_retry_attempts: Option<i64>,
    pub tumbling_window_in_seconds: Option<i64>,
    pub source_access_configurations: Option<Vec<Value>>,
    pub function_response_types: Option<Vec<String>>,
    pub filter_criteria: Option<Value>,
}

/// The body of CreateEventSourceMapping.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    pub event_source_arn: Option<String>,
    pub function_name: Option<String>,
    pub enabled: Option<bool>,
    pub starting_position: Option<String>,
    /// Epoch seconds (the SDKs' encoding of a timestamp in this API).
    pub starting_position_timestamp: Option<f64>,
    pub queues: Option<Vec<String>>,
    pub topics: Option<Vec<String>>,
    pub self_managed_event_source: Option<Value>,
    #[serde(flatten)]
    pub settings: Settings,
}

/// The body of UpdateEventSourceMapping.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateRequest {
    pub function_name: Option<String>,
    pub enabled: Option<bool>,
    #[serde(flatten)]
    pub settings: Settings,
}

/// A create request that passed every check that needs no database.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The function as addressed (its existence is the caller's to check).
    pub function: FunctionRef,
    pub enabled: bool,
    pub kind: SourceKind,
    /// The mapping's configuration with the source's defaults (no UUID, function ARN or state yet).
    pub mapping: EventSourceMapping,
}

/// CreateEventSourceMapping's checks and defaults.
pub fn prepare_create(req: &CreateRequest) -> ApiResult<Prepared> {
    let mut v = Violations::default();
    let function = match &req.function_name {
        None => {
            v.missing("functionName");
            None
        }
        Some(name) => function_ref(name, &mut v),
    };
    if let Some(arn) = &req.event_source_arn {
        check_arn(arn, &mut v);
    }
    if let Some(p) = &req.starting_position
        && !matches!(p.as_str(), "TRIM_HORIZON" | "LATEST" | "AT_TIMESTAMP")
    {
        v.push(p, "startingPosition", &format!("Member must satisfy enum value set: {STARTING_POSITIONS}"));
    }
    if let Some(queues) = &req.queues {
        if queues.is_empty() {
            v.push(&list(queues), "queues", "Member must have length greater than or equal to 1");
        } else if queues.len() > 1 {
            v.push(&list(queues), "queues", "Member must have length less than or equal to 1");
        }
        if queues.iter().any(|q| q.is_empty() || q.chars().count() > 1000) {
            v.push(
                &list(queues),
                "queues",
                "Member must satisfy constraint: [Member must have length less than or equal to 1000, Member must have length greater than or equal to 1]",
            );
        }
    }
    check_settings(&req.settings, &mut v);
    v.finish()?;
    let Some(function) = function else {
        return Err(ApiError::Internal(anyhow::anyhow!("a missing FunctionName passed validation")));
    };

    check_destination(&req.settings)?;
    if req.self_managed_event_source.is_some() || req.topics.is_some() {
        return Err(unrecognized());
    }
    let Some(arn) = &req.event_source_arn else {
        return Err(ApiError::InvalidParameterValue("Unrecognized event source.".into()));
    };
    let kind = SourceKind::of(arn).ok_or_else(unrecognized)?;
    check_kind(kind, &req.settings)?;
    let s = &req.settings;
    let mut mapping = EventSourceMapping {
        event_source_arn: Some(arn.clone()),
        state_transition_reason: kind.transition_reason().to_owned(),
        last_processing_result: NO_RECORDS_PROCESSED.to_owned(),
        batch_size: s.batch_size.unwrap_or(kind.default_batch_size()),
        maximum_batching_window_in_seconds: s.maximum_batching_window_in_seconds.unwrap_or(0),
        function_response_types: s.function_response_types.clone().unwrap_or_default(),
        source_access_configurations: s.source_access_configurations.clone(),
        ..EventSourceMapping::default()
    };
    match kind {
        SourceKind::Kinesis => {
            let Some(position) = &req.starting_position else {
                return Err(ApiError::InvalidParameterValue(
                    "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: Member must not be null."
                        .into(),
                ));
            };
            match (position.as_str(), req.starting_position_timestamp) {
                ("AT_TIMESTAMP", None) => {
                    return Err(ApiError::InvalidParameterValue(
                        "StartingPositionTimestamp must be provided with StartingPosition AT_TIMESTAMP".into(),
                    ));
                }
                ("AT_TIMESTAMP", Some(t)) if !(t.is_finite() && t >= 0.0) => {
                    return Err(ApiError::InvalidParameterValue(format!(
                        "Received Exception while reading from provided stream. {t} can not be converted to a Timestamp"
                    )));
                }
                ("AT_TIMESTAMP", Some(_)) | (_, None) => {}
                (_, Some(_)) => {
                    return Err(ApiError::InvalidParameterValue(
                        "Timestamp only valid with StartingPosition AT_TIMESTAMP".into(),
                    ));
                }
            }
            mapping.starting_position = Some(position.clone());
            mapping.starting_position_timestamp = req.starting_position_timestamp;
            mapping.parallelization_factor = Some(s.parallelization_factor.unwrap_or(1));
            mapping.maximum_record_age_in_seconds = Some(s.maximum_record_age_in_seconds.unwrap_or(-1));
            mapping.bisect_batch_on_function_error = Some(s.bisect_batch_on_function_error.unwrap_or(false));
            mapping.maximum_retry_attempts = Some(s.maximum_retry_attempts.unwrap_or(-1));
            mapping.destination_config = Some(s.destination_config.clone().unwrap_or_else(|| json!({"OnFailure": {}})));
            if req.queues.is_some() {
                return Err(unsupported("Queues"));
            }
        }
        SourceKind::Sqs => {
            if req.starting_position.is_some() || req.starting_position_timestamp.is_some() {
                return Err(ApiError::InvalidParameterValue(
                    "StartingPosition is not valid for SQS event sources.".into(),
                ));
            }
            if req.queues.is_some() {
                return Err(unsupported("Queues"));
            }
        }
        SourceKind::Mq => {
            if req.starting_position.is_some() || req.starting_position_timestamp.is_some() {
                return Err(unsupported("StartingPosition"));
            }
            match &req.queues {
                Some(queues) => mapping.queues = Some(queues.clone()),
                None => {
                    return Err(ApiError::InvalidParameterValue(
                        "Queues is required for an Amazon MQ event source: the one queue to read.".into(),
                    ));
                }
            }
        }
    }
    check_combination(kind, &mapping)?;
    Ok(Prepared { function, enabled: req.enabled.unwrap_or(true), kind, mapping })
}

/// UpdateEventSourceMapping's model checks; returns the function to switch to, if any.
pub fn check_update(req: &UpdateRequest) -> ApiResult<Option<FunctionRef>> {
    let mut v = Violations::default();
    let function = req.function_name.as_deref().and_then(|name| function_ref(name, &mut v));
    check_settings(&req.settings, &mut v);
    v.finish()?;
    Ok(function)
}

/// `current` with an update's settings applied, after the checks of its source kind.
pub fn apply_settings(kind: SourceKind, current: &EventSourceMapping, s: &Settings) -> ApiResult<EventSourceMapping> {
    check_destination(s)?;
    check_kind(kind, s)?;
    let mut m = current.clone();
    if let Some(n) = s.batch_size {
        m.batch_size = n;
    }
    if let Some(n) = s.maximum_batching_window_in_seconds {
        m.maximum_batching_window_in_seconds = n;
    }
    if let Some(n) = s.parallelization_factor {
        m.parallelization_factor = Some(n);
    }
    if let Some(n) = s.maximum_record_age_in_seconds {
        m.maximum_record_age_in_seconds = Some(n);
    }
    if let Some(b) = s.bisect_batch_on_function_error {
        m.bisect_batch_on_function_error = Some(b);
    }
    if let Some(n) = s.maximum_retry_attempts {
        m.maximum_retry_attempts = Some(n);
    }
    if let Some(d) = &s.destination_config {
        m.destination_config = Some(d.clone());
    }
    if let Some(t) = &s.function_response_types {
        m.function_response_types = t.clone();
    }
    if let Some(c) = &s.source_access_configurations {
        m.source_access_configurations = Some(c.clone());
    }
    check_combination(kind, &m)?;
    Ok(m)
}

/// The ListEventSourceMappings `EventSourceArn` filter's model check.
pub fn check_source_filter(arn: &str) -> ApiResult<()> {
    let mut v = Violations::default();
    check_arn(arn, &mut v);
    v.finish()
}

fn function_ref(name: &str, v: &mut Violations) -> Option<FunctionRef> {
    match FunctionRef::parse(name, "functionName") {
        Ok(r) => Some(r),
        Err(ApiError::Validation(found)) => {
            for text in found {
                v.push_raw(&text);
            }
            None
        }
        Err(other) => {
            v.push_raw(&other.to_string());
            None
        }
    }
}

fn check_arn(arn: &str, v: &mut Violations) {
    if !arn_matches(arn) {
        v.push(
            arn,
            "eventSourceArn",
            &format!("Member must satisfy regular expression pattern: {EVENT_SOURCE_ARN_PATTERN}"),
        );
    }
}

/// `arn:aws:([a-zA-Z0-9\-])+:([a-z]{2}-[a-z]+-\d{1})?:(\d{12})?:(.*)`, matched whole.
fn arn_matches(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:aws:") else { return false };
    let mut parts = rest.splitn(4, ':');
    let (Some(service), Some(region), Some(account), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let region_ok = region.is_empty() || {
        let pieces: Vec<&str> = region.split('-').collect();
        pieces.len() == 3
            && pieces[0].len() == 2
            && pieces[0].bytes().all(|b| b.is_ascii_lowercase())
            && !pieces[1].is_empty()
            && pieces[1].bytes().all(|b| b.is_ascii_lowercase())
            && pieces[2].len() == 1
            && pieces[2].bytes().all(|b| b.is_ascii_digit())
    };
    !service.is_empty()
        && service.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && region_ok
        && (account.is_empty() || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())))
        && !resource.contains(['\n', '\r'])
}

fn check_settings(s: &Settings, v: &mut Violations) {
    if let Some(n) = s.batch_size {
        v.range(n, "batchSize", 1, 10_000);
    }
    if let Some(n) = s.maximum_batching_window_in_seconds {
        v.range(n, "maximumBatchingWindowInSeconds", 0, 300);
    }
    if let Some(n) = s.parallelization_factor {
        v.range(n, "parallelizationFactor", 1, 10);
    }
    if let Some(n) = s.maximum_record_age_in_seconds {
        v.range(n, "maximumRecordAgeInSeconds", -1, 604_800);
    }
    if let Some(n) = s.maximum_retry_attempts {
        v.range(n, "maximumRetryAttempts", -1, 10_000);
    }
    if let Some(n) = s.tumbling_window_in_seconds {
        v.range(n, "tumblingWindowInSeconds", 0, 900);
    }
    if let Some(types) = &s.function_response_types {
        if types.len() > 1 {
            v.push(&list(types), "functionResponseTypes", "Member must have length less than or equal to 1");
        }
        if types.iter().any(|t| t != REPORT_BATCH_ITEM_FAILURES) {
            v.push(
                &list(types),
                "functionResponseTypes",
                &format!("Member must satisfy constraint: [Member must satisfy enum value set: [{REPORT_BATCH_ITEM_FAILURES}]]"),
            );
        }
    }
    if let Some(c) = &s.source_access_configurations
        && c.len() > 22
    {
        let shown = serde_json::to_string(c).unwrap_or_default();
        v.push(&shown, "sourceAccessConfigurations", "Member must have length less than or equal to 22");
    }
}

/// A list as AWS prints it in validation messages (`[a, b]`).
fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

fn unrecognized() -> ApiError {
    ApiError::InvalidParameterValue("Unrecognized event source, must be kinesis, sqs or mq.".into())
}

fn unsupported(parameter: &str) -> ApiError {
    ApiError::InvalidParameterValue(format!("Unsupported {parameter} parameter for given event source mapping type."))
}

/// Features of the API that Lamina's pollers do not implement: refused rather than ignored, since
/// ignoring them would invoke the function with what the user meant to filter or aggregate.
fn not_in_lamina(parameter: &str) -> ApiError {
    ApiError::InvalidParameterValue(format!("Lamina does not support {parameter} on event source mappings."))
}

fn check_destination(s: &Settings) -> ApiResult<()> {
    if let Some(d) = &s.destination_config
        && d.get("OnSuccess").is_some_and(|v| !v.is_null())
    {
        return Err(unsupported("DestinationConfig"));
    }
    Ok(())
}

/// What each source kind accepts besides the fields every kind has.
fn check_kind(kind: SourceKind, s: &Settings) -> ApiResult<()> {
    if s.filter_criteria.is_some() {
        return Err(not_in_lamina("FilterCriteria"));
    }
    let stream_only = [
        ("ParallelizationFactor", s.parallelization_factor.is_some()),
        ("MaximumRecordAgeInSeconds", s.maximum_record_age_in_seconds.is_some()),
        ("BisectBatchOnFunctionError", s.bisect_batch_on_function_error.is_some()),
        ("MaximumRetryAttempts", s.maximum_retry_attempts.is_some()),
        ("TumblingWindowInSeconds", s.tumbling_window_in_seconds.is_some()),
        ("DestinationConfig", s.destination_config.is_some()),
    ];
    match kind {
        SourceKind::Kinesis => {
            if s.tumbling_window_in_seconds.is_some_and(|n| n > 0) {
                return Err(not_in_lamina("TumblingWindowInSeconds"));
            }
            if let Some(d) = &s.destination_config {
                let target = d.pointer("/OnFailure/Destination").and_then(Value::as_str);
                if let Some(target) = target
                    && !target.starts_with("arn:aws:sqs:")
                {
                    return Err(ApiError::InvalidParameterValue(format!(
                        "The OnFailure destination {target} is not supported: Lamina sends discarded stream records to SQS queues."
                    )));
                }
            }
            if s.source_access_configurations.is_some() {
                return Err(unsupported("SourceAccessConfigurations"));
            }
        }
        SourceKind::Sqs => {
            if let Some((name, _)) = stream_only.iter().find(|(_, given)| *given) {
                return Err(unsupported(name));
            }
            if s.source_access_configurations.is_some() {
                return Err(unsupported("SourceAccessConfigurations"));
            }
        }
        SourceKind::Mq => {
            if let Some((name, _)) = stream_only.iter().find(|(_, given)| *given) {
                return Err(unsupported(name));
            }
            if s.function_response_types.as_ref().is_some_and(|t| !t.is_empty()) {
                return Err(unsupported("FunctionResponseTypes"));
            }
        }
    }
    Ok(())
}

/// Checks across fields, on the configuration as it will be stored.
fn check_combination(kind: SourceKind, m: &EventSourceMapping) -> ApiResult<()> {
    match kind {
        SourceKind::Sqs if m.batch_size > 10 && m.maximum_batching_window_in_seconds < 1 => {
            Err(ApiError::InvalidParameterValue(
                "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
                    .into(),
            ))
        }
        SourceKind::Kinesis if m.maximum_record_age_in_seconds.is_some_and(|n| (0..60).contains(&n)) => {
            Err(ApiError::InvalidParameterValue(
                "MaximumRecordAgeInSeconds must be -1 (records never expire) or between 60 and 604800.".into(),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(body: Value) -> ApiResult<Prepared> {
        prepare_create(&serde_json::from_value(body).expect("request"))
    }

    fn error(body: Value) -> (String, String) {
        let e = create(body).expect_err("rejected");
        (e.error_type().to_owned(), e.to_string())
    }

    const STREAM: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/s";
    const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:q";
    const BROKER: &str = "arn:aws:mq:us-east-1:123456789012:broker:b:b-1234";

    #[test]
    fn defaults_per_source() {
        let k =
            create(json!({"FunctionName": "f", "EventSourceArn": STREAM, "StartingPosition": "LATEST"})).expect("ok");
        assert_eq!(k.kind, SourceKind::Kinesis);
        assert_eq!(k.mapping.batch_size, 100);
        assert_eq!(k.mapping.maximum_retry_attempts, Some(-1));
        assert_eq!(k.mapping.maximum_record_age_in_seconds, Some(-1));
        assert_eq!(k.mapping.parallelization_factor, Some(1));
        assert_eq!(k.mapping.bisect_batch_on_function_error, Some(false));
        assert_eq!(k.mapping.destination_config, Some(json!({"OnFailure": {}})));
        assert_eq!(k.mapping.state_transition_reason, USER_ACTION);
        let q = create(json!({"FunctionName": "f:1", "EventSourceArn": QUEUE, "Enabled": false})).expect("ok");
        assert_eq!((q.mapping.batch_size, q.enabled, q.function.qualifier.as_deref()), (10, false, Some("1")));
        assert_eq!(q.mapping.starting_position, None);
        assert_eq!(q.mapping.state_transition_reason, USER_INITIATED);
        let m = create(json!({"FunctionName": "f", "EventSourceArn": BROKER, "Queues": ["orders"]})).expect("ok");
        assert_eq!((m.mapping.batch_size, m.mapping.queues.clone()), (100, Some(vec!["orders".to_owned()])));
    }

    #[test]
    fn model_violations_are_validation_exceptions() {
        let (ty, msg) = error(json!({"EventSourceArn": QUEUE}));
        assert_eq!(ty, "ValidationException");
        assert!(msg.contains("Value null at 'functionName'"), "{msg}");
        let (ty, msg) = error(json!({"FunctionName": "f", "EventSourceArn": QUEUE, "BatchSize": 0}));
        assert_eq!(ty, "ValidationException");
        assert_eq!(
            msg,
            "1 validation error detected: Value '0' at 'batchSize' failed to satisfy constraint: Member must have value greater than or equal to 1"
        );
        let (_, msg) = error(json!({"FunctionName": "f", "EventSourceArn": STREAM, "StartingPosition": "invalid"}));
        assert_eq!(
            msg,
            "1 validation error detected: Value 'invalid' at 'startingPosition' failed to satisfy constraint: Member must satisfy enum value set: [LATEST, AT_TIMESTAMP, TRIM_HORIZON]"
        );
        let (_, msg) = error(json!({"FunctionName": "f", "EventSourceArn": "not-an-arn", "ParallelizationFactor": 11}));
        assert!(msg.starts_with("2 validation errors detected"), "{msg}");
        let (ty, _) = error(json!({"FunctionName": "f", "EventSourceArn": BROKER, "Queues": ["a", "b"]}));
        assert_eq!(ty, "ValidationException");
    }

    #[test]
    fn service_checks_are_invalid_parameter_values() {
        let ipv = |body: Value| {
            let (ty, msg) = error(body);
            assert_eq!(ty, "InvalidParameterValueException", "{msg}");
            msg
        };
        assert_eq!(ipv(json!({"FunctionName": "f"})), "Unrecognized event source.");
        assert!(ipv(json!({"FunctionName": "f", "EventSourceArn": STREAM})).contains("'startingPosition'"));
        assert_eq!(
            ipv(json!({"FunctionName": "f", "EventSourceArn": QUEUE, "StartingPosition": "LATEST"})),
            "StartingPosition is not valid for SQS event sources."
        );
        assert_eq!(
            ipv(json!({"FunctionName": "f", "EventSourceArn": QUEUE, "BatchSize": 11})),
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
        );
        create(
            json!({"FunctionName": "f", "EventSourceArn": QUEUE, "BatchSize": 11, "MaximumBatchingWindowInSeconds": 1}),
        )
        .expect("a window allows more than 10");
        assert_eq!(
            ipv(json!({"FunctionName": "f", "EventSourceArn": QUEUE, "MaximumRetryAttempts": 3})),
            "Unsupported MaximumRetryAttempts parameter for given event source mapping type."
        );
        assert_eq!(
            ipv(json!({"FunctionName": "f", "EventSourceArn": STREAM, "StartingPosition": "LATEST",
                "StartingPositionTimestamp": 1.0})),
            "Timestamp only valid with StartingPosition AT_TIMESTAMP"
        );
        assert!(ipv(json!({"FunctionName": "f", "EventSourceArn": BROKER})).contains("Queues"));
        assert!(
            ipv(json!({"FunctionName": "f", "EventSourceArn": "arn:aws:sns:us-east-1:123456789012:t"}))
                .starts_with("Unrecognized event source")
        );
        assert_eq!(
            ipv(json!({"FunctionName": "f", "EventSourceArn": QUEUE,
                "DestinationConfig": {"OnSuccess": {"Destination": QUEUE}}})),
            "Unsupported DestinationConfig parameter for given event source mapping type."
        );
        assert!(
            ipv(json!({"FunctionName": "f", "EventSourceArn": STREAM, "StartingPosition": "LATEST",
            "MaximumRecordAgeInSeconds": 30}))
            .contains("MaximumRecordAgeInSeconds")
        );
    }

    #[test]
    fn updates_keep_what_they_do_not_name() {
        let k = create(json!({"FunctionName": "f", "EventSourceArn": QUEUE})).expect("ok");
        let s = Settings { batch_size: Some(5), ..Settings::default() };
        let m = apply_settings(SourceKind::Sqs, &k.mapping, &s).expect("update");
        assert_eq!((m.batch_size, m.maximum_batching_window_in_seconds), (5, 0));
        let s = Settings { batch_size: Some(50), ..Settings::default() };
        assert_eq!(
            apply_settings(SourceKind::Sqs, &m, &s).expect_err("needs a window").error_type(),
            "InvalidParameterValueException"
        );
    }

    #[test]
    fn arn_pattern() {
        assert!(arn_matches(STREAM));
        assert!(arn_matches("arn:aws:sqs:::q"));
        assert!(!arn_matches("arn:aws:sqs:useast1:123456789012:q"));
        assert!(!arn_matches("arn:aws:sqs:us-east-1:12345:q"));
        assert!(!arn_matches("arn:aws:sqs"));
        assert_eq!(SourceKind::of(BROKER), Some(SourceKind::Mq));
    }
}
