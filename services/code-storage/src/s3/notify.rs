//! S3 event notifications: stored rules, matching, and the event record (the guide's sample event shape).

use serde::{Deserialize, Serialize};
use serde_json::json;

/// One `LambdaFunctionConfiguration`, as stored in `bucket.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NotificationRule {
    pub id: String,
    pub function_arn: String,
    /// As configured, e.g. `s3:ObjectCreated:*`.
    pub events: Vec<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}

/// The event types a configuration may name.
pub(crate) const SUPPORTED_EVENTS: &[&str] = &[
    "s3:ObjectCreated:*",
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*",
    "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
];

impl NotificationRule {
    /// Whether an event (`ObjectCreated:Put`, …) on `key` matches this rule.
    pub fn matches(&self, event_name: &str, key: &str) -> bool {
        let event_ok = self.events.iter().any(|configured| {
            let configured = configured.strip_prefix("s3:").unwrap_or(configured);
            match configured.strip_suffix('*') {
                Some(family) => event_name.starts_with(family),
                None => configured == event_name,
            }
        });
        event_ok
            && self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && self.suffix.as_deref().is_none_or(|s| key.ends_with(s))
    }
}

/// What happened to an object, for one record.
pub(crate) struct ObjectEvent<'a> {
    /// e.g. `ObjectCreated:Put`.
    pub event_name: &'a str,
    pub bucket: &'a str,
    pub bucket_owner: &'a str,
    pub key: &'a str,
    pub size: Option<u64>,
    pub etag: Option<&'a str>,
    pub version_id: Option<&'a str>,
    pub sequencer: u64,
    pub principal: &'a str,
    pub source_ip: &'a str,
    pub request_id: &'a str,
    pub host_id: &'a str,
    pub region: &'a str,
    pub event_time_ms: i64,
}

/// `{"Records":[record]}` for one matching configuration.
pub(crate) fn event_json(ev: &ObjectEvent<'_>, configuration_id: &str) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    object.insert("key".into(), json!(encode_key(ev.key)));
    if let Some(size) = ev.size {
        object.insert("size".into(), json!(size));
    }
    if let Some(etag) = ev.etag {
        object.insert("eTag".into(), json!(etag));
    }
    if let Some(v) = ev.version_id {
        object.insert("versionId".into(), json!(v));
    }
    object.insert("sequencer".into(), json!(format!("{:016X}", ev.sequencer)));
    let time = chrono::DateTime::from_timestamp_millis(ev.event_time_ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": ev.region,
        "eventTime": time,
        "eventName": ev.event_name,
        "userIdentity": {"principalId": ev.principal},
        "requestParameters": {"sourceIPAddress": ev.source_ip},
        "responseElements": {"x-amz-request-id": ev.request_id, "x-amz-id-2": ev.host_id},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": ev.bucket,
                "ownerIdentity": {"principalId": ev.bucket_owner},
                "arn": format!("arn:aws:s3:::{}", ev.bucket),
            },
            "object": object,
        },
    }]})
}

/// Keys in event records are URL-encoded the way S3 does it (form encoding: space is `+`; `/` kept).
pub(crate) fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b'/' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(events: &[&str], prefix: Option<&str>, suffix: Option<&str>) -> NotificationRule {
        NotificationRule {
            id: "r".into(),
            function_arn: "arn".into(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            prefix: prefix.map(str::to_owned),
            suffix: suffix.map(str::to_owned),
        }
    }

    #[test]
    fn wildcard_and_exact_events_with_filters() {
        let r = rule(&["s3:ObjectCreated:*"], Some("images/"), Some(".jpg"));
        assert!(r.matches("ObjectCreated:Put", "images/a.jpg"));
        assert!(r.matches("ObjectCreated:CompleteMultipartUpload", "images/b.jpg"));
        assert!(!r.matches("ObjectRemoved:Delete", "images/a.jpg"));
        assert!(!r.matches("ObjectCreated:Put", "docs/a.jpg"));
        assert!(!r.matches("ObjectCreated:Put", "images/a.png"));
        let r = rule(&["s3:ObjectRemoved:Delete"], None, None);
        assert!(r.matches("ObjectRemoved:Delete", "x"));
        assert!(!r.matches("ObjectRemoved:DeleteMarkerCreated", "x"));
    }

    #[test]
    fn keys_are_form_encoded() {
        assert_eq!(encode_key("images/my photo (1).jpg"), "images/my+photo+%281%29.jpg");
        assert_eq!(encode_key("é"), "%C3%A9");
    }
}
