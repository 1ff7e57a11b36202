//! GetMetricData: several metric queries over one time range, paginated by datapoints.
//!
//! Pagination: a page holds at most `MaxDatapoints` datapoints. Queries are answered in request
//! order, each one's datapoints in `ScanBy` order; a query first appears in the page where its turn
//! comes (with its datapoints or none) and, when the page fills up inside it, continues in the next
//! page with `StatusCode` `PartialData` until then. `NextToken` names where the next page resumes
//! (a query and the last timestamp given of it), so data arriving between pages does not shift it.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use regex::Regex;
use serde::Deserialize;
use serde_json::{Value, json};

use lamina_common::telemetry::Metric;
use lamina_common::{ApiError, ApiResult};

use super::request::{
    self, Dimension, Flag, Number, Statistic, TimeRange, extended_unsupported, is_extended, missing, required,
    required_text,
};
use super::selection::Selection;
use super::store::{self, SeriesQuery};
use super::{NAMESPACE, now_seconds};
use crate::Observability;

/// Queries one call may hold.
const MAX_QUERIES: usize = 500;
/// Datapoints one page may hold (CloudWatch's default and ceiling of `MaxDatapoints`).
const MAX_DATAPOINTS: usize = 100_800;

static ID: LazyLock<Result<Regex, regex::Error>> = LazyLock::new(|| Regex::new("^[a-z][a-zA-Z0-9_]*$"));

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct GetMetricDataRequest {
    metric_data_queries: Option<Vec<MetricDataQuery>>,
    start_time: Option<Number>,
    end_time: Option<Number>,
    next_token: Option<String>,
    scan_by: Option<String>,
    max_datapoints: Option<Number>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct MetricDataQuery {
    id: Option<String>,
    metric_stat: Option<MetricStatSpec>,
    expression: Option<String>,
    label: Option<String>,
    return_data: Option<Flag>,
    account_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct MetricStatSpec {
    metric: Option<MetricSpec>,
    period: Option<Number>,
    stat: Option<String>,
    unit: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct MetricSpec {
    namespace: Option<String>,
    metric_name: Option<String>,
    dimensions: Option<Vec<Dimension>>,
}

/// A checked query whose data is returned.
#[derive(Debug)]
struct Query {
    /// Position in `MetricDataQueries`, counted from 0.
    index: usize,
    id: String,
    label: String,
    stat: Statistic,
    period: i64,
    /// `None`: a metric Lamina has no data for (other namespace or name, unpublished dimension
    /// set, or a unit that is not the metric's).
    series: Option<(Metric, Selection)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScanBy {
    Descending,
    Ascending,
}

/// Where a page resumes: the query at `index`, after the timestamp `after` when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    index: usize,
    after: Option<i64>,
}

impl Position {
    fn token(self) -> String {
        let after = self.after.map(|t| t.to_string()).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(format!("{}:{after}", self.index))
    }

    fn parse(token: &str) -> Option<Position> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let (index, after) = raw.split_once(':')?;
        let after = if after.is_empty() { None } else { Some(after.parse().ok()?) };
        Some(Position { index: index.parse().ok()?, after })
    }
}

/// Checks one `MetricDataQueries` member; `None` for one whose data is not returned.
fn check_query(q: MetricDataQuery, index: usize, account: &str) -> ApiResult<Option<Query>> {
    let at = format!("MetricDataQueries.member.{}", index + 1);
    let id = required_text(q.id, &format!("{at}.Id"))?;
    let id_ok = ID.as_ref().map(|re| re.is_match(&id)).unwrap_or(false);
    if !id_ok || id.len() > 255 {
        return Err(ApiError::InvalidParameterValue(format!(
            "The value {id} for parameter {at}.Id is not valid: an Id starts with a lowercase letter and holds \
             only letters, digits and underscores."
        )));
    }
    if q.account_id.as_deref().is_some_and(|a| a != account) {
        return Err(ApiError::InvalidParameterValue(format!(
            "The parameter {at}.AccountId must be the caller's account: Lamina has no cross-account observability."
        )));
    }
    let spec = match (q.metric_stat, q.expression) {
        (_, Some(_)) => return Err(ApiError::InvalidParameterValue("Metric math is not supported by Lamina.".into())),
        (Some(spec), None) => spec,
        (None, None) => {
            return Err(ApiError::ValidationMessage(format!(
                "Exactly one of MetricStat and Expression must be specified in {at}."
            )));
        }
    };
    let at = format!("{at}.MetricStat");
    let metric = required(spec.metric, &format!("{at}.Metric"))?;
    let namespace = required_text(metric.namespace, &format!("{at}.Metric.Namespace"))?;
    let metric_name = required_text(metric.metric_name, &format!("{at}.Metric.MetricName"))?;
    let dims = request::dimensions(metric.dimensions, &format!("{at}.Metric.Dimensions"))?;
    let period = request::period(spec.period, &format!("{at}.Period"))?;
    let stat_name = required_text(spec.stat, &format!("{at}.Stat"))?;
    let stat = match Statistic::parse(&stat_name) {
        Some(s) => s,
        None if is_extended(&stat_name) => return Err(extended_unsupported(&stat_name)),
        None => {
            return Err(ApiError::InvalidParameterValue(format!(
                "The value {stat_name} for parameter {at}.Stat is not a valid statistic."
            )));
        }
    };
    let unit = request::unit(spec.unit, &format!("{at}.Unit"))?;
    if !q.return_data.is_none_or(|Flag(b)| b) {
        return Ok(None);
    }
    let series = Metric::parse(&metric_name)
        .filter(|m| namespace == NAMESPACE && unit.as_deref().is_none_or(|u| u == m.unit()))
        .zip(Selection::of(&dims));
    let label = match q.label {
        Some(l) if !l.is_empty() => dynamic_label(&l, &namespace, &metric_name, &dims, stat, period),
        _ => metric_name.clone(),
    };
    Ok(Some(Query { index, id, label, stat, period, series }))
}

/// Fills in the `${PROP('...')}` dynamic labels CloudWatch documents for metric queries.
fn dynamic_label(
    label: &str,
    namespace: &str,
    metric_name: &str,
    dims: &[(String, String)],
    stat: Statistic,
    period: i64,
) -> String {
    let mut out = label
        .replace("${PROP('Namespace')}", namespace)
        .replace("${PROP('MetricName')}", metric_name)
        .replace("${PROP('Stat')}", stat.name())
        .replace("${PROP('Period')}", &period.to_string());
    for (name, value) in dims {
        out = out.replace(&format!("${{PROP('Dim.{name}')}}"), value);
    }
    out
}

fn scan_by(value: Option<String>) -> ApiResult<ScanBy> {
    match value.as_deref() {
        None | Some("TimestampDescending") => Ok(ScanBy::Descending),
        Some("TimestampAscending") => Ok(ScanBy::Ascending),
        Some(_) => Err(ApiError::InvalidParameterValue(
            "The parameter ScanBy must be a value in the set [ TimestampDescending, TimestampAscending ].".into(),
        )),
    }
}

fn max_datapoints(value: Option<Number>) -> ApiResult<usize> {
    match value {
        None => Ok(MAX_DATAPOINTS),
        Some(Number(n)) if n >= 1.0 && n.fract() == 0.0 => Ok((n.min(MAX_DATAPOINTS as f64)) as usize),
        Some(_) => {
            Err(ApiError::InvalidParameterValue("The parameter MaxDatapoints must be a positive integer.".into()))
        }
    }
}

/// The (timestamp, value) pairs of a query, in scan order.
async fn points(
    obs: &Observability,
    account: &str,
    q: &Query,
    range: TimeRange,
    scan: ScanBy,
) -> ApiResult<Vec<(i64, f64)>> {
    let Some((metric, selection)) = &q.series else { return Ok(Vec::new()) };
    let query =
        SeriesQuery { account, metric: *metric, selection, start: range.start, end: range.end, period: q.period };
    let mut points: Vec<(i64, f64)> = store::series(&obs.store, &query)
        .await?
        .into_iter()
        .map(|b| (b.ts, q.stat.of(b.sample_count as f64, b.sum_value, b.min_value, b.max_value)))
        .collect();
    if scan == ScanBy::Descending {
        points.reverse();
    }
    Ok(points)
}

pub(crate) async fn get_metric_data(obs: &Observability, account: &str, request: &Value) -> ApiResult<Value> {
    let r: GetMetricDataRequest = request::parse(request)?;
    let raw_queries = r.metric_data_queries.ok_or_else(|| missing("MetricDataQueries"))?;
    if raw_queries.len() > MAX_QUERIES {
        return Err(ApiError::InvalidParameterValue(format!(
            "The collection MetricDataQueries must not have more than {MAX_QUERIES} members."
        )));
    }
    let range = request::time_range(r.start_time, r.end_time, now_seconds())?;
    let scan = scan_by(r.scan_by)?;
    let budget = max_datapoints(r.max_datapoints)?;
    let mut ids = BTreeSet::new();
    let mut queries = Vec::new();
    for (index, raw) in raw_queries.into_iter().enumerate() {
        if let Some(id) = &raw.id
            && !ids.insert(id.clone())
        {
            return Err(ApiError::InvalidParameterValue(format!(
                "The value {id} for parameter MetricDataQueries.member.{}.Id is not unique.",
                index + 1
            )));
        }
        queries.extend(check_query(raw, index, account)?);
    }
    let start = match r.next_token.as_deref() {
        None => Position { index: 0, after: None },
        Some(token) => Position::parse(token)
            .ok_or_else(|| ApiError::InvalidParameterValue("The parameter NextToken is not valid.".into()))?,
    };

    let mut left = budget;
    let mut results = Vec::new();
    let mut next = None;
    for q in queries.iter().filter(|q| q.index >= start.index) {
        if left == 0 {
            next = Some(Position { index: q.index, after: None });
            break;
        }
        let mut all = points(obs, account, q, range, scan).await?;
        if let (true, Some(after)) = (q.index == start.index, start.after) {
            all.retain(|(ts, _)| match scan {
                ScanBy::Descending => *ts < after,
                ScanBy::Ascending => *ts > after,
            });
        }
        let complete = all.len() <= left;
        all.truncate(left);
        left -= all.len();
        if !complete {
            next = all.last().map(|(ts, _)| Position { index: q.index, after: Some(*ts) });
        }
        let (timestamps, values): (Vec<i64>, Vec<f64>) = all.into_iter().unzip();
        results.push(json!({
            "Id": q.id,
            "Label": q.label,
            "Timestamps": timestamps,
            "Values": values,
            "StatusCode": if complete { "Complete" } else { "PartialData" },
        }));
        if !complete {
            break;
        }
    }
    let mut reply = json!({ "MetricDataResults": results, "Messages": [] });
    if let Some(next) = next {
        reply["NextToken"] = json!(next.token());
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for p in [Position { index: 0, after: None }, Position { index: 499, after: Some(1_700_000_040) }] {
            assert_eq!(Position::parse(&p.token()), Some(p));
        }
        assert_eq!(Position::parse("not a token"), None);
    }

    #[test]
    fn labels_fill_in_properties() {
        let dims = vec![("FunctionName".to_owned(), "f".to_owned())];
        let l = dynamic_label(
            "${PROP('Dim.FunctionName')} ${PROP('Stat')}/${PROP('Period')}",
            "AWS/Lambda",
            "Errors",
            &dims,
            Statistic::Sum,
            300,
        );
        assert_eq!(l, "f Sum/300");
    }

    #[test]
    fn max_datapoints_is_positive_and_capped() {
        assert_eq!(max_datapoints(None).unwrap(), MAX_DATAPOINTS);
        assert_eq!(max_datapoints(Some(Number(1e9))).unwrap(), MAX_DATAPOINTS);
        assert_eq!(max_datapoints(Some(Number(3.0))).unwrap(), 3);
        assert!(max_datapoints(Some(Number(0.0))).is_err());
    }
}
