//! Timestamps in the formats the Lambda API prints.

use chrono::{DateTime, Utc};

/// `2015-07-16T00:34:31.322+0000`: FunctionConfiguration.LastModified.
pub fn last_modified(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Formats epoch milliseconds as LastModified.
pub fn last_modified_ms(ms: i64) -> String {
    last_modified(DateTime::from_timestamp_millis(ms).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn last_modified_has_three_fraction_digits() {
        let s = super::last_modified_ms(1_437_006_871_322);
        assert_eq!(s, "2015-07-16T00:34:31.322+0000");
    }
}
