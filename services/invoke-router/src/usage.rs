//! The `AWS/Lambda` metric samples of this router's invocations: Invocations, Errors and Duration
//! per run, Throttles per refusal, and ConcurrentExecutions from the runs in flight here (per
//! account, function and resource), sampled whenever one starts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use lamina_common::ApiResult;
use lamina_common::telemetry::{Metric, MetricKey, MetricSample, TelemetrySink};

use crate::InvokeRequest;

/// Where the samples go, and the runs in flight. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Usage {
    sink: Arc<dyn TelemetrySink>,
    in_flight: Arc<Mutex<InFlight>>,
}

/// The dimensions of an invocation as invoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invoked {
    account: String,
    function: String,
    /// `name` or `name:qualifier`.
    resource: String,
}

impl Invoked {
    pub(crate) fn of(req: &InvokeRequest) -> Self {
        let function = req.function_name.as_str().to_owned();
        let resource = match &req.qualifier {
            Some(q) => format!("{function}:{q}"),
            None => function.clone(),
        };
        Self { account: req.account_id.as_str().to_owned(), function, resource }
    }
}

/// Runs in flight per account, per function and per resource.
#[derive(Debug, Default)]
struct InFlight {
    accounts: HashMap<String, AccountRuns>,
}

#[derive(Debug, Default)]
struct AccountRuns {
    total: u64,
    functions: HashMap<String, FunctionRuns>,
}

#[derive(Debug, Default)]
struct FunctionRuns {
    total: u64,
    resources: HashMap<String, u64>,
}

impl InFlight {
    /// One more run; the counts of (account, function, resource) after it.
    fn start(&mut self, d: &Invoked) -> [u64; 3] {
        let account = self.accounts.entry(d.account.clone()).or_default();
        account.total += 1;
        let function = account.functions.entry(d.function.clone()).or_default();
        function.total += 1;
        let resource = function.resources.entry(d.resource.clone()).or_default();
        *resource += 1;
        [account.total, function.total, *resource]
    }

    /// One run fewer; counts that reach zero are forgotten.
    fn end(&mut self, d: &Invoked) {
        let Some(account) = self.accounts.get_mut(&d.account) else { return };
        account.total = account.total.saturating_sub(1);
        if let Some(function) = account.functions.get_mut(&d.function) {
            function.total = function.total.saturating_sub(1);
            if let Some(n) = function.resources.get_mut(&d.resource) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    function.resources.remove(&d.resource);
                }
            }
            if function.total == 0 {
                account.functions.remove(&d.function);
            }
        }
        if account.total == 0 {
            self.accounts.remove(&d.account);
        }
    }
}

fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

impl Usage {
    pub(crate) fn new(sink: Arc<dyn TelemetrySink>) -> Self {
        Self { sink, in_flight: Arc::default() }
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, InFlight> {
        // Counts stay consistent across a panic elsewhere: each change is made under one lock.
        self.in_flight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One sample of `metric` under (the invocation's account, `function`, `resource`, `version`).
    fn sample(&self, d: &Invoked, dims: [&str; 3], metric: Metric, at: i64, value: f64) {
        let [function, resource, version] = dims;
        self.sink.metric(MetricSample {
            key: MetricKey {
                account_id: d.account.clone(),
                function_name: function.to_owned(),
                resource: resource.to_owned(),
                executed_version: version.to_owned(),
                metric,
            },
            timestamp_ms: at,
            value,
        });
    }

    /// An invocation of `version` refused for concurrency (by the router or by every host).
    pub(crate) fn throttled(&self, d: &Invoked, version: &str) {
        self.sample(d, [&d.function, &d.resource, version], Metric::Throttles, now_ms(), 1.0);
    }

    /// A run of `version` starts: counted in flight (until the returned [`Run`] is dropped) and
    /// sampled as ConcurrentExecutions of the account, the function and the resource (the rows
    /// the dimension sets `[]`, `[FunctionName]` and `[FunctionName, Resource]` read).
    pub(crate) fn start(&self, d: Invoked, version: String) -> Run {
        let [account, function, resource] = self.in_flight().start(&d);
        let at = now_ms();
        let concurrent = Metric::ConcurrentExecutions;
        self.sample(&d, ["", "", ""], concurrent, at, account as f64);
        self.sample(&d, [&d.function, "", ""], concurrent, at, function as f64);
        self.sample(&d, [&d.function, &d.resource, ""], concurrent, at, resource as f64);
        Run { usage: self.clone(), invoked: d, version }
    }
}

/// A run in flight; dropping it (however the run ended) counts it out.
pub(crate) struct Run {
    usage: Usage,
    invoked: Invoked,
    version: String,
}

impl Run {
    /// Records how the run ended: Invocations, Errors and Duration when a host ran it, Throttles
    /// when every host refused it for capacity; nothing for a service failure.
    pub(crate) fn finished(self, result: &ApiResult<lamina_exec_host::InvokeOutcome>) {
        let (u, d) = (&self.usage, &self.invoked);
        let dims = [d.function.as_str(), d.resource.as_str(), self.version.as_str()];
        let at = now_ms();
        match result {
            Ok(out) => {
                u.sample(d, dims, Metric::Invocations, at, 1.0);
                u.sample(d, dims, Metric::Errors, at, if out.function_error { 1.0 } else { 0.0 });
                u.sample(d, dims, Metric::Duration, at, out.duration_ms);
            }
            Err(lamina_common::ApiError::TooManyRequests { .. }) => u.throttled(d, &self.version),
            Err(_) => {}
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.usage.in_flight().end(&self.invoked);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use lamina_common::{AccountId, ApiError, FunctionName, Qualifier};

    use super::*;
    use crate::InvocationType;

    #[derive(Default)]
    struct Recorded(Mutex<Vec<MetricSample>>);

    impl TelemetrySink for Recorded {
        fn logs(&self, _: lamina_common::telemetry::LogBatch) {}
        fn metric(&self, sample: MetricSample) {
            self.0.lock().unwrap().push(sample);
        }
    }

    impl Recorded {
        /// (function, resource, version, metric, value) of every sample, then forgotten.
        fn take(&self) -> Vec<(String, String, String, Metric, f64)> {
            let samples = std::mem::take(&mut *self.0.lock().unwrap());
            samples
                .into_iter()
                .map(|s| (s.key.function_name, s.key.resource, s.key.executed_version, s.key.metric, s.value))
                .collect()
        }
    }

    fn request(function: &str, qualifier: Option<&str>) -> InvokeRequest {
        InvokeRequest {
            account_id: AccountId::parse("111111111111").unwrap(),
            function_name: FunctionName::parse(function).unwrap(),
            qualifier: qualifier.map(|q| Qualifier::parse(q).unwrap()),
            request_id: "r".into(),
            invocation_type: InvocationType::RequestResponse,
            payload: Bytes::new(),
            client_context: None,
            tail_log: false,
        }
    }

    fn outcome(function_error: bool, duration_ms: f64) -> ApiResult<lamina_exec_host::InvokeOutcome> {
        Ok(lamina_exec_host::InvokeOutcome {
            payload: Bytes::new(),
            function_error,
            log_tail: None,
            duration_ms,
            init_duration_ms: None,
            max_memory_used_mb: 0,
        })
    }

    fn row(f: &str, r: &str, v: &str, m: Metric, value: f64) -> (String, String, String, Metric, f64) {
        (f.into(), r.into(), v.into(), m, value)
    }

    #[test]
    fn the_resource_is_the_name_as_invoked() {
        assert_eq!(Invoked::of(&request("f", None)).resource, "f");
        assert_eq!(Invoked::of(&request("f", Some("live"))).resource, "f:live");
        assert_eq!(Invoked::of(&request("f", Some("3"))).resource, "f:3");
    }

    #[test]
    fn runs_are_sampled_at_start_and_recorded_at_the_end() {
        let sink = Arc::new(Recorded::default());
        let usage = Usage::new(sink.clone());
        let first = usage.start(Invoked::of(&request("f", Some("live"))), "2".into());
        assert_eq!(
            sink.take(),
            [
                row("", "", "", Metric::ConcurrentExecutions, 1.0),
                row("f", "", "", Metric::ConcurrentExecutions, 1.0),
                row("f", "f:live", "", Metric::ConcurrentExecutions, 1.0),
            ]
        );
        let second = usage.start(Invoked::of(&request("f", None)), "$LATEST".into());
        let other = usage.start(Invoked::of(&request("g", None)), "$LATEST".into());
        let values: Vec<f64> = sink.take().into_iter().map(|s| s.4).collect();
        assert_eq!(values, [2.0, 2.0, 1.0, 3.0, 1.0, 1.0], "account 2 then 3, f 2, f 1, g 1, g 1");
        first.finished(&outcome(true, 12.5));
        assert_eq!(
            sink.take(),
            [
                row("f", "f:live", "2", Metric::Invocations, 1.0),
                row("f", "f:live", "2", Metric::Errors, 1.0),
                row("f", "f:live", "2", Metric::Duration, 12.5),
            ]
        );
        second.finished(&Err(ApiError::TooManyRequests { message: "m".into(), reason: "r" }));
        assert_eq!(sink.take(), [row("f", "f", "$LATEST", Metric::Throttles, 1.0)]);
        // A run that ends without an outcome (a service failure, a cancellation) only leaves.
        drop(other);
        assert!(sink.take().is_empty());
        assert!(usage.in_flight().accounts.is_empty(), "counts at zero are forgotten");
        let again = usage.start(Invoked::of(&request("f", None)), "$LATEST".into());
        let values: Vec<f64> = sink.take().into_iter().map(|s| s.4).collect();
        assert_eq!(values, [1.0, 1.0, 1.0]);
        again.finished(&Err(ApiError::ServiceUnavailable("down".into())));
        assert!(sink.take().is_empty());
    }

    #[test]
    fn throttles_carry_the_invoked_resource_and_version() {
        let sink = Arc::new(Recorded::default());
        let usage = Usage::new(sink.clone());
        usage.throttled(&Invoked::of(&request("f", Some("live"))), "4");
        assert_eq!(sink.take(), [row("f", "f:live", "4", Metric::Throttles, 1.0)]);
        assert!(usage.in_flight().accounts.is_empty());
    }
}
