//! Bounded metric labels. Prometheus keeps every series it has seen for the life of the process,
//! so a label whose value a tenant chooses (the `errorType` a function reports, the names of the
//! functions it creates) must come from a bounded set, or one tenant can grow `/metrics`, and the
//! server's memory, without end.

use std::collections::HashSet;
use std::sync::Mutex;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};

/// Error types kept as they are: Lamina's own and the runtimes' (programming-model §6). Any other
/// value a function reports is counted as `Other`.
const KNOWN_ERROR_TYPES: &[&str] = &[
    "Unhandled",
    "Handled",
    "Function.ResponseSizeTooLarge",
    "Runtime.ExitError",
    "Runtime.HandlerNotFound",
    "Runtime.ImportModuleError",
    "Runtime.InvalidEntrypoint",
    "Runtime.OutOfMemory",
    "Runtime.Unknown",
    "Runtime.UserCodeSyntaxError",
    "Sandbox.Timedout",
];
/// What an unknown error type is counted as.
pub const OTHER_ERROR_TYPE: &str = "Other";
/// What a function past the series cap is counted as (both `account` and `function`).
pub const OTHER_FUNCTION: &str = "other";
/// Distinct (account, function) pairs that get series of their own, per process.
pub const DEFAULT_FUNCTION_SERIES: usize = 2000;

/// A recorder that bounds label values, then hands the metric to `inner`.
pub struct Bounded<R> {
    inner: R,
    max_functions: usize,
    functions: Mutex<HashSet<(String, String)>>,
}

impl<R> Bounded<R> {
    pub fn new(inner: R, max_functions: usize) -> Self {
        Self { inner, max_functions, functions: Mutex::default() }
    }

    fn bound(&self, key: &Key) -> Key {
        let labels: Vec<&Label> = key.labels().collect();
        let is = |name: &str, l: &&Label| l.key() == name;
        let error_type = labels.iter().find(|l| is("error_type", l)).map(|l| l.value());
        let known_error = error_type.is_none_or(|t| KNOWN_ERROR_TYPES.contains(&t));
        let account = labels.iter().find(|l| is("account", l)).map(|l| l.value());
        let function = labels.iter().find(|l| is("function", l)).map(|l| l.value());
        let keep_function = match (account, function) {
            (None, None) => true,
            (account, function) => self.admit(account.unwrap_or_default(), function.unwrap_or_default()),
        };
        if known_error && keep_function {
            return key.clone();
        }
        let bounded = labels.into_iter().map(|l| match l.key() {
            "error_type" if !known_error => Label::new("error_type", OTHER_ERROR_TYPE),
            "account" | "function" if !keep_function => Label::new(l.key().to_owned(), OTHER_FUNCTION),
            _ => l.clone(),
        });
        Key::from_parts(key.name_shared(), bounded.collect::<Vec<_>>())
    }

    /// True when the pair has, or may now have, series of its own.
    fn admit(&self, account: &str, function: &str) -> bool {
        let mut seen = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        let pair = (account.to_owned(), function.to_owned());
        if seen.contains(&pair) {
            return true;
        }
        if seen.len() >= self.max_functions {
            return false;
        }
        seen.insert(pair);
        true
    }
}

impl<R: Recorder> Recorder for Bounded<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description)
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description)
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description)
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.inner.register_counter(&self.bound(key), metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.inner.register_gauge(&self.bound(key), metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.inner.register_histogram(&self.bound(key), metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_chosen_label_values_are_bounded() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let bounded = Bounded::new(recorder, 3);
        metrics::with_local_recorder(&bounded, || {
            for i in 0..1000 {
                metrics::counter!("errors", "account" => "a", "function" => "f", "error_type" => format!("E{i}"))
                    .increment(1);
                metrics::counter!("invocations", "account" => "a", "function" => format!("f{i}")).increment(1);
            }
            metrics::counter!("errors", "account" => "a", "function" => "f", "error_type" => "Sandbox.Timedout")
                .increment(1);
        });
        let text = handle.render();
        let series = |name: &str| text.lines().filter(|l| l.starts_with(&format!("{name}{{"))).count();
        assert_eq!(series("errors"), 2, "{text}");
        assert!(text.contains(r#"errors{account="a",function="f",error_type="Other"} 1000"#), "{text}");
        assert!(text.contains(r#"error_type="Sandbox.Timedout"} 1"#), "{text}");
        // f (admitted first) and two more have their own series; the rest share one.
        assert_eq!(series("invocations"), 3, "{text}");
        assert!(text.contains(r#"invocations{account="other",function="other"} 998"#), "{text}");
    }
}
