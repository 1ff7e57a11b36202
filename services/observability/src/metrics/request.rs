//! The request members the metric operations share, read from the internal JSON and checked the
//! way CloudWatch checks them.
//!
//! Error kinds follow the design's mapping: `InvalidRequestContent` → `MissingParameter`,
//! `InvalidParameterValue` → `InvalidParameterValue`, `ValidationMessage` →
//! `InvalidParameterCombination`.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use lamina_common::{ApiError, ApiResult};

/// Seconds in a day.
pub(crate) const DAY: i64 = 86_400;

/// A JSON number, or a string holding one: a query-protocol frontend may hand either.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Number(pub(crate) f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Number(n)),
            Raw::Text(s) => {
                s.trim().parse().map(Number).map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number")))
            }
        }
    }
}

/// A JSON boolean, or the string `true`/`false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flag(pub(crate) bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(b) => Ok(Flag(b)),
            Raw::Text(s) if s.eq_ignore_ascii_case("true") => Ok(Flag(true)),
            Raw::Text(s) if s.eq_ignore_ascii_case("false") => Ok(Flag(false)),
            Raw::Text(s) => Err(serde::de::Error::custom(format!("{s:?} is not a boolean"))),
        }
    }
}

/// A `Dimension` (GetMetricStatistics, GetMetricData) or `DimensionFilter` (ListMetrics).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct Dimension {
    pub(crate) name: Option<String>,
    pub(crate) value: Option<String>,
}

/// Reads the request object of an operation; members it does not know are ignored.
pub(crate) fn parse<T: DeserializeOwned + Default>(request: &serde_json::Value) -> ApiResult<T> {
    if request.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(request.clone())
        .map_err(|e| ApiError::InvalidParameterValue(format!("The request could not be read: {e}.")))
}

/// `MissingParameter` for a required member.
pub(crate) fn missing(name: &str) -> ApiError {
    ApiError::InvalidRequestContent(format!("The parameter {name} is required."))
}

/// The value of a required member.
pub(crate) fn required<T>(value: Option<T>, name: &str) -> ApiResult<T> {
    value.ok_or_else(|| missing(name))
}

/// A required, non-empty string member (`Namespace`, `MetricName`).
pub(crate) fn required_text(value: Option<String>, name: &str) -> ApiResult<String> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(missing(name)),
    }
}

/// Checks a `Period` (seconds): Lamina keeps one-minute statistics, so a period is a whole number
/// of minutes (CloudWatch also accepts 1, 5, 10, 20 and 30 for high-resolution metrics, which
/// `AWS/Lambda` does not have).
pub(crate) fn period(value: Option<Number>, name: &str) -> ApiResult<i64> {
    let Number(p) = required(value, name)?;
    if p.is_nan() || p <= 0.0 {
        return Err(ApiError::InvalidParameterValue(format!("The parameter {name} must be greater than 0.")));
    }
    if p.fract() != 0.0 || p % 60.0 != 0.0 || p > i32::MAX as f64 {
        return Err(ApiError::InvalidParameterValue(format!("The parameter {name} must be a multiple of 60.")));
    }
    Ok(p as i64)
}

/// The time range of a query, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TimeRange {
    /// `StartTime` rounded down as CloudWatch rounds it; periods are counted from here.
    pub(crate) start: i64,
    /// `EndTime` rounded up: a minute starting before `EndTime` is in the range (it is exclusive).
    pub(crate) end: i64,
    /// The seconds the request asked for, for the datapoint limit.
    pub(crate) requested: f64,
}

/// Checks `StartTime` and `EndTime` (epoch seconds) and rounds `StartTime` down as CloudWatch
/// documents: to the minute when less than 15 days old, to 5 minutes up to 63 days, else to the hour.
pub(crate) fn time_range(start: Option<Number>, end: Option<Number>, now: i64) -> ApiResult<TimeRange> {
    let Number(start) = required(start, "StartTime")?;
    let Number(end) = required(end, "EndTime")?;
    for (value, name) in [(start, "StartTime"), (end, "EndTime")] {
        // Far beyond any stored minute, and small enough that the arithmetic below stays exact.
        if !value.is_finite() || value.abs() > 1e12 {
            return Err(ApiError::InvalidParameterValue(format!("The parameter {name} is not a valid timestamp.")));
        }
    }
    if start >= end {
        return Err(ApiError::InvalidParameterValue(
            "The parameter StartTime must be less than the parameter EndTime.".into(),
        ));
    }
    let whole = start.floor() as i64;
    let age = now - whole;
    let granule = if age < 15 * DAY {
        60
    } else if age < 63 * DAY {
        300
    } else {
        3600
    };
    Ok(TimeRange { start: whole.div_euclid(granule) * granule, end: end.ceil() as i64, requested: end - start })
}

/// Dimensions as (name, value) pairs, checked as CloudWatch checks them.
pub(crate) fn dimensions(dims: Option<Vec<Dimension>>, prefix: &str) -> ApiResult<Vec<(String, String)>> {
    let dims = dims.unwrap_or_default();
    if dims.len() > 30 {
        return Err(ApiError::InvalidParameterValue(format!(
            "The collection {prefix} must not have more than 30 members."
        )));
    }
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(dims.len());
    for (i, d) in dims.into_iter().enumerate() {
        let at = format!("{prefix}.member.{}", i + 1);
        let name = required_text(d.name, &format!("{at}.Name"))?;
        let value = required_text(d.value, &format!("{at}.Value"))?;
        check_dimension_text(&name, &format!("{at}.Name"))?;
        check_dimension_text(&value, &format!("{at}.Value"))?;
        if !names.insert(name.clone()) {
            return Err(ApiError::InvalidParameterValue(format!(
                "The collection {prefix} must not contain duplicate dimension names ({name})."
            )));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// Dimension names and values are 1 to 1,024 characters.
pub(crate) fn check_dimension_text(text: &str, name: &str) -> ApiResult<()> {
    if text.chars().count() > 1024 {
        return Err(ApiError::InvalidParameterValue(format!(
            "The parameter {name} must be at most 1024 characters long."
        )));
    }
    Ok(())
}

/// The units CloudWatch accepts (`StandardUnit`).
const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Checks a `Unit` member.
pub(crate) fn unit(value: Option<String>, name: &str) -> ApiResult<Option<String>> {
    match value {
        Some(u) if !UNITS.contains(&u.as_str()) => Err(ApiError::InvalidParameterValue(format!(
            "The parameter {name} must be a value in the set [ {} ].",
            UNITS.join(", ")
        ))),
        other => Ok(other),
    }
}

/// The statistics Lamina computes from a minute's count, sum, minimum and maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Statistic {
    SampleCount,
    Average,
    Sum,
    Minimum,
    Maximum,
}

impl Statistic {
    pub(crate) const ALL: [Statistic; 5] =
        [Statistic::SampleCount, Statistic::Average, Statistic::Sum, Statistic::Minimum, Statistic::Maximum];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Statistic::SampleCount => "SampleCount",
            Statistic::Average => "Average",
            Statistic::Sum => "Sum",
            Statistic::Minimum => "Minimum",
            Statistic::Maximum => "Maximum",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Statistic> {
        Statistic::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The statistic's value over a period.
    pub(crate) fn of(self, count: f64, sum: f64, min: f64, max: f64) -> f64 {
        match self {
            Statistic::SampleCount => count,
            Statistic::Average => sum / count,
            Statistic::Sum => sum,
            Statistic::Minimum => min,
            Statistic::Maximum => max,
        }
    }
}

/// Whether `stat` names one of CloudWatch's extended statistics (percentiles `p99`, trimmed means
/// `tm90`, `TM(10%:90%)`, `wm`, `tc`, `ts`, `pr`, `IQM`).
pub(crate) fn is_extended(stat: &str) -> bool {
    let lower = stat.to_ascii_lowercase();
    if lower == "iqm" {
        return true;
    }
    ["tm", "wm", "tc", "ts", "pr", "p"].iter().any(|prefix| {
        lower.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit() || c == '('))
    })
}

/// Why an extended statistic gets no answer.
pub(crate) fn extended_unsupported(stat: &str) -> ApiError {
    ApiError::InvalidParameterValue(format!(
        "The statistic {stat} is not supported by Lamina: percentiles and other extended statistics need \
         every sample, and Lamina keeps only each minute's SampleCount, Sum, Minimum and Maximum."
    ))
}

/// 1440 → "1,440", as CloudWatch prints counts in its messages.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn numbers_and_flags_may_be_strings() {
        let n: Number = serde_json::from_value(serde_json::json!("300")).unwrap();
        assert_eq!(n, Number(300.0));
        let n: Number = serde_json::from_value(serde_json::json!(1.5)).unwrap();
        assert_eq!(n, Number(1.5));
        assert!(serde_json::from_value::<Number>(serde_json::json!("x")).is_err());
        let f: Flag = serde_json::from_value(serde_json::json!("false")).unwrap();
        assert_eq!(f, Flag(false));
    }

    #[test]
    fn periods_are_whole_minutes() {
        assert_eq!(period(Some(Number(300.0)), "Period").unwrap(), 300);
        for bad in [0.0, -60.0, 30.0, 90.0, 60.5, f64::NAN] {
            assert!(matches!(period(Some(Number(bad)), "Period"), Err(ApiError::InvalidParameterValue(_))), "{bad}");
        }
        assert!(matches!(period(None, "Period"), Err(ApiError::InvalidRequestContent(_))));
    }

    #[test]
    fn start_time_is_rounded_down_by_its_age() {
        let r = time_range(Some(Number((NOW - 100) as f64 + 0.5)), Some(Number(NOW as f64 + 0.25)), NOW).unwrap();
        assert_eq!(r.start, (NOW - 100).div_euclid(60) * 60);
        assert_eq!(r.end, NOW + 1);
        let old = NOW - 20 * DAY - 7;
        let r = time_range(Some(Number(old as f64)), Some(Number(NOW as f64)), NOW).unwrap();
        assert_eq!(r.start, old.div_euclid(300) * 300);
        let older = NOW - 70 * DAY - 7;
        let r = time_range(Some(Number(older as f64)), Some(Number(NOW as f64)), NOW).unwrap();
        assert_eq!(r.start, older.div_euclid(3600) * 3600);
        let e = time_range(Some(Number(10.0)), Some(Number(10.0)), NOW).unwrap_err();
        assert_eq!(e.to_string(), "The parameter StartTime must be less than the parameter EndTime.");
    }

    #[test]
    fn extended_statistics_are_recognised() {
        for s in ["p99", "p99.9", "P50", "tm90", "TM(10%:90%)", "IQM", "wm99", "tc(1:2)", "pr(1:)"] {
            assert!(is_extended(s), "{s}");
        }
        for s in ["Sum", "Average", "p", "pizza", "Maximum"] {
            assert!(!is_extended(s), "{s}");
        }
    }

    #[test]
    fn counts_get_separators() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1440), "1,440");
        assert_eq!(thousands(16_666), "16,666");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn dimensions_are_checked() {
        let d = |n: &str, v: &str| Dimension { name: Some(n.into()), value: Some(v.into()) };
        let ok = dimensions(Some(vec![d("FunctionName", "f"), d("Resource", "f:1")]), "Dimensions").unwrap();
        assert_eq!(ok.len(), 2);
        let dup = dimensions(Some(vec![d("FunctionName", "f"), d("FunctionName", "g")]), "Dimensions");
        assert!(matches!(dup, Err(ApiError::InvalidParameterValue(_))));
        let missing =
            dimensions(Some(vec![Dimension { name: Some("FunctionName".into()), value: None }]), "Dimensions");
        assert_eq!(missing.unwrap_err().to_string(), "The parameter Dimensions.member.1.Value is required.");
    }
}
