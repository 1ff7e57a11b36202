//! Reading the operations' JSON requests and checking them as CloudWatch Logs does; its model
//! violations are `InvalidParameterException`s worded "1 validation error detected: ...".

use std::sync::LazyLock;

use lamina_common::names::Violations;
use lamina_common::{ApiError, ApiResult};
use regex::Regex;
use serde::de::DeserializeOwned;

/// Deserialises an operation's request object (a missing body reads as `{}`).
pub(crate) fn parse<T: DeserializeOwned>(request: &serde_json::Value) -> ApiResult<T> {
    let value = if request.is_null() { serde_json::Value::Object(Default::default()) } else { request.clone() };
    serde_json::from_value(value).map_err(|e| ApiError::InvalidParameterValue(format!("Invalid request: {e}")))
}

/// Turns collected violations into the error CloudWatch Logs answers them with.
pub(crate) fn finish(v: Violations) -> ApiResult<()> {
    v.finish().map_err(|e| match e {
        ApiError::Validation(_) => ApiError::InvalidParameterValue(e.to_string()),
        other => other,
    })
}

pub(crate) fn group_not_found() -> ApiError {
    ApiError::ResourceNotFound("The specified log group does not exist.".into())
}

pub(crate) fn stream_not_found() -> ApiError {
    ApiError::ResourceNotFound("The specified log stream does not exist.".into())
}

static GROUP_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[\.\-_/#A-Za-z0-9]+$").expect("static regex"));
static STREAM_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[^:*]*$").expect("static regex"));
// AWS's pattern is `[\w#+=/:,.@-]*`; the `*` of an ARN's `:*` tail is accepted too.
static IDENTIFIER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[\w#+=/:,.@*-]*$").expect("static regex"));
static GROUP_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws[a-zA-Z-]*:logs:[a-z0-9-]*:(?P<account>[0-9]{12}):log-group:(?P<name>[^:]+)(?::\*)?$")
        .expect("static regex")
});

/// Checks a log group name given as `member`.
pub(crate) fn check_group_name(v: &mut Violations, name: &str, member: &str) {
    v.length(name, member, 1, 512);
    if !name.is_empty() {
        v.pattern(name, member, &GROUP_NAME, r"[\.\-_/#A-Za-z0-9]+");
    }
}

/// Checks a log stream name given as `member`.
pub(crate) fn check_stream_name(v: &mut Violations, name: &str, member: &str) {
    v.length(name, member, 1, 512);
    v.pattern(name, member, &STREAM_NAME, "[^:*]*");
}

/// A required member: its value, or a violation.
pub(crate) fn required<'a>(v: &mut Violations, value: Option<&'a str>, member: &str) -> &'a str {
    match value {
        Some(s) => s,
        None => {
            v.missing(member);
            ""
        }
    }
}

/// A page size: `default` when absent, else within `1..=max`.
pub(crate) fn limit(v: &mut Violations, value: Option<i64>, max: i64, default: i64) -> usize {
    let n = value.unwrap_or(default);
    v.range(n, "limit", 1, max);
    usize::try_from(n.clamp(1, max)).unwrap_or(1)
}

/// Where an operation that takes `logGroupName` or `logGroupIdentifier` (a name or a log group ARN,
/// with or without `:*`) points. An ARN of another account names no group of this caller.
pub(crate) enum GroupRef {
    Name(String),
    OtherAccount,
}

pub(crate) fn group_ref(
    v: &mut Violations,
    account: &str,
    name: Option<&str>,
    identifier: Option<&str>,
) -> ApiResult<GroupRef> {
    match (name, identifier) {
        (Some(_), Some(_)) => Err(ApiError::InvalidParameterValue(
            "LogGroup name and LogGroup ARN are mutually exclusive parameters.".into(),
        )),
        (None, None) => {
            Err(ApiError::InvalidParameterValue("Either logGroupName or logGroupIdentifier must be specified.".into()))
        }
        (Some(name), None) => {
            check_group_name(v, name, "logGroupName");
            Ok(GroupRef::Name(name.to_owned()))
        }
        (None, Some(id)) => {
            v.length(id, "logGroupIdentifier", 1, 2048);
            v.pattern(id, "logGroupIdentifier", &IDENTIFIER, r"[\w#+=/:,.@-]*");
            if !id.starts_with("arn:") {
                check_group_name(v, id, "logGroupIdentifier");
                return Ok(GroupRef::Name(id.to_owned()));
            }
            let Some(caps) = GROUP_ARN.captures(id) else {
                return Err(ApiError::InvalidParameterValue(format!("Invalid log group identifier: {id}")));
            };
            if &caps["account"] != account {
                return Ok(GroupRef::OtherAccount);
            }
            check_group_name(v, &caps["name"], "logGroupIdentifier");
            Ok(GroupRef::Name(caps["name"].to_owned()))
        }
    }
}

/// AWS's retention periods, in days.
pub(crate) const RETENTION_DAYS: [i64; 22] =
    [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

pub(crate) fn check_retention(v: &mut Violations, days: Option<i64>) -> i64 {
    let Some(days) = days else {
        v.missing("retentionInDays");
        return 0;
    };
    if !RETENTION_DAYS.contains(&days) {
        let set = RETENTION_DAYS.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        v.push(&days.to_string(), "retentionInDays", &format!("Member must satisfy enum value set: [{set}]"));
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(account: &str, name: Option<&str>, id: Option<&str>) -> ApiResult<Option<String>> {
        let mut v = Violations::default();
        let r = group_ref(&mut v, account, name, id)?;
        finish(v)?;
        Ok(match r {
            GroupRef::Name(n) => Some(n),
            GroupRef::OtherAccount => None,
        })
    }

    #[test]
    fn group_references() {
        let acct = "123456789012";
        let named = |r: ApiResult<Option<String>>| r.expect("valid").expect("same account");
        assert_eq!(named(resolve(acct, Some("/aws/lambda/f"), None)), "/aws/lambda/f");
        assert_eq!(named(resolve(acct, None, Some("/aws/lambda/f"))), "/aws/lambda/f");
        let arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f";
        assert_eq!(named(resolve(acct, None, Some(arn))), "/aws/lambda/f");
        assert_eq!(named(resolve(acct, None, Some(&format!("{arn}:*")))), "/aws/lambda/f");
        let other = "arn:aws:logs:us-east-1:210987654321:log-group:/aws/lambda/f:*";
        assert!(resolve(acct, None, Some(other)).expect("valid").is_none());
        for bad in [
            resolve(acct, Some("a"), Some("a")),
            resolve(acct, None, None),
            resolve(acct, Some("has space"), None),
            resolve(acct, Some(""), None),
            resolve(acct, None, Some("arn:aws:logs:us-east-1:123456789012:function:f")),
        ] {
            assert!(matches!(bad, Err(ApiError::InvalidParameterValue(_))), "{bad:?}");
        }
    }

    #[test]
    fn limits_use_aws_words() {
        let mut v = Violations::default();
        limit(&mut v, Some(0), 50, 50);
        let err = finish(v).expect_err("0 is out of range");
        assert_eq!(
            err.to_string(),
            "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: \
             Member must have value greater than or equal to 1"
        );
        let mut v = Violations::default();
        assert_eq!(limit(&mut v, None, 50, 50), 50);
        assert_eq!(limit(&mut v, Some(7), 50, 50), 7);
        finish(v).expect("in range");
    }

    #[test]
    fn retention_values() {
        for days in RETENTION_DAYS {
            let mut v = Violations::default();
            check_retention(&mut v, Some(days));
            finish(v).expect("allowed");
        }
        let mut v = Violations::default();
        check_retention(&mut v, Some(2));
        let msg = finish(v).expect_err("2 days").to_string();
        assert!(msg.contains("Value '2' at 'retentionInDays'"), "{msg}");
        assert!(msg.contains("[1, 3, 5, 7, 14, 30, 60"), "{msg}");
    }
}
