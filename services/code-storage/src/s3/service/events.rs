//! Delivering S3 event notifications for a committed change, before the request is answered.

use s3s::{S3Result, s3_error};

use super::{Handler, to_s3};
use crate::s3::Delivery;
use crate::s3::auth::scope;
use crate::s3::notify::{ObjectEvent, event_json};
use crate::s3::store::{VersionRecord, now_ms};

impl Handler {
    /// Queues one Event invocation per matching configuration. If queuing fails the change stays
    /// (it is already committed) and the caller gets 503, so a client retry re-sends the event.
    pub(super) async fn notify(
        &self,
        bucket: &str,
        event_name: &str,
        record: &VersionRecord,
        versioned: bool,
        principal: &str,
    ) -> S3Result<()> {
        let meta = self.api.inner.store.bucket(bucket).await.map_err(to_s3)?;
        if meta.notifications.is_empty() {
            return Ok(());
        }
        let scope = scope();
        let (request_id, host_id, source_ip) = match &scope {
            Some(s) => (s.request_id.as_str(), s.host_id.as_str(), s.source_ip.as_str()),
            None => ("", "", ""),
        };
        let created = event_name.starts_with("ObjectCreated");
        let ev = ObjectEvent {
            event_name,
            bucket,
            bucket_owner: &meta.owner,
            key: &record.key,
            size: created.then_some(record.size),
            etag: created.then_some(record.etag.as_str()),
            version_id: versioned.then_some(record.version_id.as_str()),
            sequencer: record.seq,
            principal,
            source_ip,
            request_id,
            host_id,
            region: &self.api.inner.config.region,
            event_time_ms: now_ms(),
        };
        let deliveries: Vec<Delivery> = meta
            .notifications
            .iter()
            .filter(|rule| rule.matches(event_name, &record.key))
            .map(|rule| Delivery {
                bucket_owner: meta.owner.clone(),
                function_arn: rule.function_arn.clone(),
                event: event_json(&ev, &rule.id),
            })
            .collect();
        if deliveries.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.api.inner.events.deliver(deliveries).await {
            tracing::error!(error = format!("{e:#}"), bucket, key = record.key, "queue S3 event notification");
            return Err(s3_error!(ServiceUnavailable, "Please reduce your request rate."));
        }
        Ok(())
    }
}
