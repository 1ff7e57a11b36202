//! ListMetrics: the metrics (name and dimension set) of the account with data in the last two
//! weeks (or the last three hours with `RecentlyActive` = `PT3H`), 500 per page.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use lamina_common::telemetry::Metric;
use lamina_common::{ApiError, ApiResult};

use super::request::{self, DAY, Dimension, Flag, check_dimension_text};
use super::selection::Selection;
use super::store;
use super::{NAMESPACE, now_seconds};
use crate::Observability;

/// Metrics per page, as CloudWatch pages them.
const PAGE: usize = 500;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ListMetricsRequest {
    namespace: Option<String>,
    metric_name: Option<String>,
    dimensions: Option<Vec<Dimension>>,
    next_token: Option<String>,
    recently_active: Option<String>,
    include_linked_accounts: Option<Flag>,
    owning_account: Option<String>,
}

/// A `DimensionFilter`: the metric has the dimension, with this value when given.
#[derive(Debug)]
struct Filter {
    name: String,
    value: Option<String>,
}

fn filters(dims: Option<Vec<Dimension>>) -> ApiResult<Vec<Filter>> {
    let dims = dims.unwrap_or_default();
    if dims.len() > 10 {
        return Err(ApiError::InvalidParameterValue(
            "The collection Dimensions must not have more than 10 members.".into(),
        ));
    }
    dims.into_iter()
        .enumerate()
        .map(|(i, d)| {
            let at = format!("Dimensions.member.{}", i + 1);
            let name = request::required_text(d.name, &format!("{at}.Name"))?;
            check_dimension_text(&name, &format!("{at}.Name"))?;
            if let Some(v) = &d.value {
                check_dimension_text(v, &format!("{at}.Value"))?;
            }
            Ok(Filter { name, value: d.value })
        })
        .collect()
}

/// The position after which a page starts: the offset into the sorted metrics.
fn parse_token(token: &str) -> Option<usize> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?.parse().ok()
}

pub(crate) async fn list_metrics(obs: &Observability, account: &str, request: &Value) -> ApiResult<Value> {
    let r: ListMetricsRequest = request::parse(request)?;
    let filters = filters(r.dimensions)?;
    let now = now_seconds();
    let since = match r.recently_active.as_deref() {
        None => now - 14 * DAY,
        Some("PT3H") => now - 3 * 3600,
        Some(_) => {
            return Err(ApiError::InvalidParameterValue("The parameter RecentlyActive must be PT3H.".into()));
        }
    };
    let offset = match r.next_token.as_deref() {
        None => 0,
        Some(t) => parse_token(t)
            .ok_or_else(|| ApiError::InvalidParameterValue("The parameter NextToken is not valid.".into()))?,
    };
    let linked = r.include_linked_accounts.is_some_and(|Flag(b)| b);
    let foreign = r.owning_account.as_deref().is_some_and(|a| a != account);
    let namespace_ok = r.namespace.as_deref().is_none_or(|n| n == NAMESPACE);
    let metric = match r.metric_name.as_deref() {
        None => None,
        Some(name) => match Metric::parse(name) {
            Some(m) => Some(m),
            None => return Ok(page(Vec::new(), 0, linked, account)),
        },
    };
    if foreign || !namespace_ok {
        return Ok(page(Vec::new(), 0, linked, account));
    }

    let mut metrics: BTreeSet<(Metric, Selection)> = BTreeSet::new();
    for key in store::keys(&obs.store, account, metric, since).await? {
        let Some(m) = Metric::parse(&key.metric) else { continue };
        for s in Selection::containing(m, &key) {
            let dims = s.dimensions();
            let passes = filters
                .iter()
                .all(|f| dims.iter().any(|(n, v)| *n == f.name && f.value.as_deref().is_none_or(|fv| fv == *v)));
            if passes {
                metrics.insert((m, s));
            }
        }
    }
    Ok(page(metrics.into_iter().collect(), offset, linked, account))
}

/// The page of `metrics` starting at `offset`.
fn page(metrics: Vec<(Metric, Selection)>, offset: usize, linked: bool, account: &str) -> Value {
    let end = offset.saturating_add(PAGE).min(metrics.len());
    let shown = metrics.get(offset..end).unwrap_or_default();
    let listed: Vec<Value> = shown
        .iter()
        .map(|(m, s)| {
            let dims: Vec<Value> = s.dimensions().into_iter().map(|(n, v)| json!({ "Name": n, "Value": v })).collect();
            json!({ "Namespace": NAMESPACE, "MetricName": m.name(), "Dimensions": dims })
        })
        .collect();
    let mut reply = json!({ "Metrics": listed });
    if linked {
        reply["OwningAccounts"] = json!(vec![account; listed.len()]);
    }
    if end < metrics.len() {
        reply["NextToken"] = json!(URL_SAFE_NO_PAD.encode(end.to_string()));
    }
    reply
}
