//! The dimension sets of `AWS/Lambda` and the stored rows each one aggregates.
//!
//! A query names a metric by its exact set of dimensions, as CloudWatch does. The producers record
//! each sample under one key (function, resource as invoked, executed version); the
//! ConcurrentExecutions samples are recorded three times instead, at account, function and
//! resource level, with the finer fields left empty. The SQL predicate ([`Selection::predicate`])
//! and its Rust twin ([`Selection::matches`], which ListMetrics uses) must agree.

use lamina_common::telemetry::Metric;

/// One dimension set with its values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Selection {
    /// No dimensions: the whole account.
    Account,
    /// `FunctionName`.
    Function(String),
    /// `FunctionName`, `Resource`.
    Resource(String, String),
    /// `FunctionName`, `ExecutedVersion`, and `Resource` when given.
    Version { function: String, resource: Option<String>, version: String },
}

/// A stored key, without its account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub(crate) struct KeyRow {
    pub(crate) function_name: String,
    pub(crate) resource: String,
    pub(crate) executed_version: String,
    pub(crate) metric: String,
}

impl Selection {
    /// The set named by `dims` (already checked for duplicates), or `None` for a combination
    /// Lamina does not publish (a query for it has no datapoints).
    pub(crate) fn of(dims: &[(String, String)]) -> Option<Selection> {
        let get = |name: &str| dims.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let known = ["FunctionName", "Resource", "ExecutedVersion"];
        if dims.iter().any(|(n, _)| !known.contains(&n.as_str())) {
            return None;
        }
        match (get("FunctionName"), get("Resource"), get("ExecutedVersion")) {
            (None, None, None) => Some(Selection::Account),
            (Some(f), None, None) => Some(Selection::Function(f)),
            (Some(f), Some(r), None) => Some(Selection::Resource(f, r)),
            (Some(function), resource, Some(version)) => Some(Selection::Version { function, resource, version }),
            (None, _, _) => None,
        }
    }

    /// The dimensions as CloudWatch lists them.
    pub(crate) fn dimensions(&self) -> Vec<(&'static str, &str)> {
        match self {
            Selection::Account => vec![],
            Selection::Function(f) => vec![("FunctionName", f)],
            Selection::Resource(f, r) => vec![("FunctionName", f), ("Resource", r)],
            Selection::Version { function, resource: Some(r), version } => {
                vec![("FunctionName", function), ("Resource", r), ("ExecutedVersion", version)]
            }
            Selection::Version { function, resource: None, version } => {
                vec![("FunctionName", function), ("ExecutedVersion", version)]
            }
        }
    }

    /// The SQL condition on `function_name`, `resource` and `executed_version` selecting this
    /// set's rows of `metric`, with its parameters numbered from `$first`, and the values to bind.
    pub(crate) fn predicate(&self, metric: Metric, first: usize) -> (String, Vec<&str>) {
        let concurrency = metric == Metric::ConcurrentExecutions;
        let (a, b, c) = (first, first + 1, first + 2);
        match self {
            Selection::Account if concurrency => ("function_name = ''".into(), vec![]),
            Selection::Account => ("function_name <> '' and resource <> ''".into(), vec![]),
            Selection::Function(f) if concurrency => {
                (format!("function_name = ${a} and resource = '' and executed_version = ''"), vec![f])
            }
            Selection::Function(f) => (format!("function_name = ${a} and resource <> ''"), vec![f]),
            Selection::Resource(f, r) if concurrency => {
                (format!("function_name = ${a} and resource = ${b} and executed_version = ''"), vec![f, r])
            }
            Selection::Resource(f, r) => (format!("function_name = ${a} and resource = ${b}"), vec![f, r]),
            Selection::Version { function, resource: Some(r), version } => (
                format!("function_name = ${a} and resource = ${b} and executed_version = ${c}"),
                vec![function, r, version],
            ),
            Selection::Version { function, resource: None, version } => (
                format!("function_name = ${a} and resource <> '' and executed_version = ${b}"),
                vec![function, version],
            ),
        }
    }

    /// Whether the row `key` of `metric` is among this set's rows (the twin of [`Self::predicate`]).
    pub(crate) fn matches(&self, metric: Metric, key: &KeyRow) -> bool {
        let concurrency = metric == Metric::ConcurrentExecutions;
        let (f, r, v) = (key.function_name.as_str(), key.resource.as_str(), key.executed_version.as_str());
        match self {
            Selection::Account if concurrency => f.is_empty(),
            Selection::Account => !f.is_empty() && !r.is_empty(),
            Selection::Function(sf) if concurrency => f == sf && r.is_empty() && v.is_empty(),
            Selection::Function(sf) => f == sf && !r.is_empty(),
            Selection::Resource(sf, sr) if concurrency => f == sf && r == sr && v.is_empty(),
            Selection::Resource(sf, sr) => f == sf && r == sr,
            Selection::Version { function, resource: Some(sr), version } => f == function && r == sr && v == version,
            Selection::Version { function, resource: None, version } => f == function && !r.is_empty() && v == version,
        }
    }

    /// The sets whose datapoints include the row `key` of `metric`: what ListMetrics lists for it.
    /// Dimension values are never empty.
    pub(crate) fn containing(metric: Metric, key: &KeyRow) -> Vec<Selection> {
        let (f, r, v) = (&key.function_name, &key.resource, &key.executed_version);
        let mut candidates = vec![Selection::Account];
        if !f.is_empty() {
            candidates.push(Selection::Function(f.clone()));
            if !r.is_empty() {
                candidates.push(Selection::Resource(f.clone(), r.clone()));
            }
            if !v.is_empty() {
                if !r.is_empty() {
                    candidates.push(Selection::Version {
                        function: f.clone(),
                        resource: Some(r.clone()),
                        version: v.clone(),
                    });
                }
                candidates.push(Selection::Version { function: f.clone(), resource: None, version: v.clone() });
            }
        }
        candidates.retain(|s| s.matches(metric, key));
        candidates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    fn key(f: &str, r: &str, v: &str, metric: Metric) -> KeyRow {
        KeyRow { function_name: f.into(), resource: r.into(), executed_version: v.into(), metric: metric.name().into() }
    }

    #[test]
    fn dimension_sets_are_exact() {
        assert_eq!(Selection::of(&[]), Some(Selection::Account));
        assert_eq!(Selection::of(&dims(&[("FunctionName", "f")])), Some(Selection::Function("f".into())));
        assert_eq!(
            Selection::of(&dims(&[("Resource", "f:a"), ("FunctionName", "f")])),
            Some(Selection::Resource("f".into(), "f:a".into()))
        );
        assert_eq!(
            Selection::of(&dims(&[("FunctionName", "f"), ("ExecutedVersion", "3")])),
            Some(Selection::Version { function: "f".into(), resource: None, version: "3".into() })
        );
        assert_eq!(Selection::of(&dims(&[("Resource", "f")])), None);
        assert_eq!(Selection::of(&dims(&[("FunctionName", "f"), ("Other", "x")])), None);
    }

    #[test]
    fn invocation_rows_are_listed_under_every_set() {
        let row = key("f", "f:live", "3", Metric::Invocations);
        let sets = Selection::containing(Metric::Invocations, &row);
        assert_eq!(sets.len(), 5, "{sets:?}");
        let unversioned = key("f", "f", "", Metric::IteratorAge);
        assert_eq!(Selection::containing(Metric::IteratorAge, &unversioned).len(), 3);
    }

    #[test]
    fn concurrency_rows_belong_to_one_set_each() {
        let m = Metric::ConcurrentExecutions;
        assert_eq!(Selection::containing(m, &key("", "", "", m)), vec![Selection::Account]);
        assert_eq!(Selection::containing(m, &key("f", "", "", m)), vec![Selection::Function("f".into())]);
        assert_eq!(
            Selection::containing(m, &key("f", "f:a", "", m)),
            vec![Selection::Resource("f".into(), "f:a".into())]
        );
        // Rows of other metrics never count at account level without a function.
        assert!(!Selection::Account.matches(Metric::Invocations, &key("", "", "", Metric::Invocations)));
    }

    #[test]
    fn predicates_number_their_parameters() {
        let s = Selection::Version { function: "f".into(), resource: Some("f:a".into()), version: "2".into() };
        let (sql, binds) = s.predicate(Metric::Duration, 6);
        assert_eq!(sql, "function_name = $6 and resource = $7 and executed_version = $8");
        assert_eq!(binds, vec!["f", "f:a", "2"]);
    }
}
