//! The process's Prometheus recorder and what `/metrics` renders: every service of the process
//! records through the `metrics` facade into one recorder; gauges that are cheaper to read than
//! to keep current (queue depth, sandbox pools) are sampled by [`Samplers`] when scraped.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::metrics_labels;

/// Bucket bounds (seconds) of every `*_seconds` histogram: sub-millisecond store calls up to
/// minute-long requests.
const SECONDS_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Bucket bounds (milliseconds) of every `*_ms` histogram (invocation durations, up to the
/// largest Timeout).
const MS_BUCKETS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0, 300000.0,
];
/// How often histogram samples are folded into their buckets when nobody scrapes (they are
/// buffered until then).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// Longest one sampler may take before a scrape answers without its fresh value.
const SAMPLE_DEADLINE: Duration = Duration::from_secs(2);

/// The process-wide Prometheus recorder (installed once, shared by every server in the process).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        // Buckets, not the exporter's default summaries: quantiles of several processes can then
        // be aggregated (`histogram_quantile(sum by (le) (rate(..)))`).
        let builder = match builder
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_ms".into()), MS_BUCKETS))
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("Prometheus buckets rejected, histograms render as summaries: {e}");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let recorder = metrics_labels::Bounded::new(recorder, metrics_labels::DEFAULT_FUNCTION_SERIES);
        // A recorder installed earlier (by an embedding program) keeps working; ours then only renders.
        let _ = metrics::set_global_recorder(recorder);
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new().name("prometheus-upkeep".into()).spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
        if let Err(e) = spawned {
            tracing::warn!("no Prometheus upkeep thread (histogram samples wait for a scrape): {e}");
        }
        handle
    })
}

/// What `/metrics` answers: the samplers' fresh values, then everything recorded.
pub async fn render() -> String {
    samplers().run().await;
    prometheus().render()
}

/// Reads values for gauges (a queue's depth, a host's sandboxes) when scraped.
pub type Sampler = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The samplers of the process (each server registers its own and drops the guard when it stops).
#[derive(Default)]
pub struct Samplers {
    next: AtomicU64,
    registered: Mutex<BTreeMap<u64, Sampler>>,
}

/// Keeps a sampler registered; dropping it unregisters the sampler.
#[must_use = "the sampler is unregistered when the guard is dropped"]
pub struct SamplerGuard {
    id: u64,
}

impl Drop for SamplerGuard {
    fn drop(&mut self) {
        samplers().registered.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

impl Samplers {
    async fn run(&self) {
        let all: Vec<Sampler> = self.registered.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for sample in all {
            if tokio::time::timeout(SAMPLE_DEADLINE, sample()).await.is_err() {
                tracing::debug!("a metrics sampler did not answer within {SAMPLE_DEADLINE:?}");
            }
        }
    }
}

/// The process's samplers.
fn samplers() -> &'static Samplers {
    static SAMPLERS: OnceLock<Samplers> = OnceLock::new();
    SAMPLERS.get_or_init(Samplers::default)
}

/// Runs `sample` before every render of `/metrics` until the guard is dropped.
pub fn on_scrape<F, Fut>(sample: F) -> SamplerGuard
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let all = samplers();
    let id = all.next.fetch_add(1, Ordering::Relaxed);
    let sampler: Sampler = Arc::new(move || Box::pin(sample()));
    all.registered.lock().unwrap_or_else(|p| p.into_inner()).insert(id, sampler);
    SamplerGuard { id }
}
