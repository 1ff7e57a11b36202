//! GetMetricStatistics: the statistics of one metric over a time range, one datapoint per period
//! with samples.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use lamina_common::telemetry::Metric;
use lamina_common::{ApiError, ApiResult};

use super::request::{self, Dimension, Number, Statistic, extended_unsupported, required_text, thousands};
use super::selection::Selection;
use super::store::{self, SeriesQuery};
use super::{NAMESPACE, now_seconds};
use crate::Observability;

/// Datapoints one GetMetricStatistics call may ask for.
const MAX_DATAPOINTS: f64 = 1440.0;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct GetMetricStatisticsRequest {
    namespace: Option<String>,
    metric_name: Option<String>,
    dimensions: Option<Vec<Dimension>>,
    start_time: Option<Number>,
    end_time: Option<Number>,
    period: Option<Number>,
    statistics: Option<Vec<String>>,
    extended_statistics: Option<Vec<String>>,
    unit: Option<String>,
}

/// The statistics asked for; extended statistics are refused (they need every sample).
fn statistics(statistics: Option<Vec<String>>, extended: Option<Vec<String>>) -> ApiResult<BTreeSet<Statistic>> {
    let statistics = statistics.unwrap_or_default();
    let extended = extended.unwrap_or_default();
    match (statistics.is_empty(), extended.is_empty()) {
        (true, true) => {
            return Err(ApiError::InvalidRequestContent(
                "The parameter Statistics or ExtendedStatistics must be specified.".into(),
            ));
        }
        (false, false) => {
            return Err(ApiError::ValidationMessage(
                "The parameters Statistics and ExtendedStatistics are mutually exclusive.".into(),
            ));
        }
        _ => {}
    }
    if let Some(first) = extended.first() {
        if extended.len() > 10 {
            return Err(ApiError::InvalidParameterValue(
                "The collection ExtendedStatistics must not have more than 10 members.".into(),
            ));
        }
        return Err(extended_unsupported(first));
    }
    if statistics.len() > 5 {
        return Err(ApiError::InvalidParameterValue(
            "The collection Statistics must not have more than 5 members.".into(),
        ));
    }
    statistics
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Statistic::parse(s).ok_or_else(|| {
                ApiError::InvalidParameterValue(format!(
                    "The parameter Statistics.member.{} must be a value in the set [ SampleCount, Average, Sum, \
                     Minimum, Maximum ].",
                    i + 1
                ))
            })
        })
        .collect()
}

pub(crate) async fn get_metric_statistics(obs: &Observability, account: &str, request: &Value) -> ApiResult<Value> {
    let r: GetMetricStatisticsRequest = request::parse(request)?;
    let namespace = required_text(r.namespace, "Namespace")?;
    let metric_name = required_text(r.metric_name, "MetricName")?;
    let range = request::time_range(r.start_time, r.end_time, now_seconds())?;
    let period = request::period(r.period, "Period")?;
    let wanted = statistics(r.statistics, r.extended_statistics)?;
    let dims = request::dimensions(r.dimensions, "Dimensions")?;
    let unit = request::unit(r.unit, "Unit")?;
    let requested = (range.requested / period as f64).ceil();
    if requested > MAX_DATAPOINTS {
        return Err(ApiError::ValidationMessage(format!(
            "You have requested up to {} datapoints, which exceeds the limit of 1,440. You may reduce the \
             datapoints requested by increasing Period, or decreasing the time range.",
            thousands(requested as u64)
        )));
    }

    let mut datapoints = Vec::new();
    let metric = Metric::parse(&metric_name).filter(|_| namespace == NAMESPACE);
    let selection = Selection::of(&dims);
    if let (Some(metric), Some(selection)) = (metric, selection)
        && unit.as_deref().is_none_or(|u| u == metric.unit())
    {
        let query = SeriesQuery { account, metric, selection: &selection, start: range.start, end: range.end, period };
        for b in store::series(&obs.store, &query).await? {
            let mut point = Map::new();
            point.insert("Timestamp".into(), json!(b.ts));
            let count = b.sample_count as f64;
            for s in &wanted {
                point.insert(s.name().into(), json!(s.of(count, b.sum_value, b.min_value, b.max_value)));
            }
            point.insert("Unit".into(), json!(metric.unit()));
            datapoints.push(Value::Object(point));
        }
    }
    Ok(json!({ "Label": metric_name, "Datapoints": datapoints }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_are_required_and_exclusive() {
        let s = |v: &[&str]| Some(v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>());
        assert!(matches!(statistics(None, None), Err(ApiError::InvalidRequestContent(_))));
        assert!(matches!(statistics(s(&["Sum"]), s(&["p99"])), Err(ApiError::ValidationMessage(_))));
        assert!(matches!(statistics(None, s(&["p99"])), Err(ApiError::InvalidParameterValue(_))));
        assert!(matches!(statistics(s(&["Avg"]), None), Err(ApiError::InvalidParameterValue(_))));
        let ok = statistics(s(&["Sum", "Maximum", "Sum"]), None).unwrap();
        assert_eq!(ok.into_iter().collect::<Vec<_>>(), vec![Statistic::Sum, Statistic::Maximum]);
    }
}
