//! The runtime side of event sources in one process: the Event-invocation runner (async settings,
//! destinations, dead letters), the scheduler and the poller manager, as `lamina serve` and each
//! `lamina async-queue` run them.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use lamina_async_queue::QueueClient;
use lamina_common::telemetry::TelemetrySink;
use lamina_event_sources::EventSourcesClient;
use lamina_event_sources::destinations::EventRunner;
use lamina_event_sources::invoker::Invoker;
use lamina_invoke_router::RouterClient;
use lamina_metadata::MetadataClient;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the event-source runtime is built from.
pub struct Parts {
    pub router: RouterClient,
    pub metadata: MetadataClient,
    pub events: EventSourcesClient,
    pub queue: QueueClient,
    pub region: String,
    /// This replica's lease-owner name (see [`owner`]).
    pub owner: String,
    /// Where pollers record the `AWS/Lambda` metrics of mappings (IteratorAge), when function
    /// telemetry is on.
    pub telemetry: Option<Arc<dyn TelemetrySink>>,
}

/// The running scheduler and poller manager, and the runner the queue worker calls.
pub struct Running {
    pub runner: EventRunner,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits for the scheduler and the pollers to stop (after the token given to [`start`]).
    pub async fn join(self) {
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!("event-source task ended abnormally: {e}");
            }
        }
    }
}

/// Starts the scheduler and the poller manager until `stop`; returns the Event runner too.
pub fn start(parts: Parts, stop: CancellationToken) -> Running {
    let runner = EventRunner::new(
        parts.router.clone(),
        parts.metadata.clone(),
        parts.events.clone(),
        parts.queue.clone(),
        parts.region.clone(),
    );
    let scheduler = tokio::spawn(lamina_event_sources::scheduler::run(
        parts.events.clone(),
        parts.metadata,
        parts.queue,
        parts.owner.clone(),
        parts.region.clone(),
        stop.clone(),
    ));
    let pollers = tokio::spawn(lamina_event_sources::pollers::run_manager(
        parts.events,
        Invoker::new(parts.router),
        parts.owner,
        parts.region,
        parts.telemetry,
        stop,
    ));
    Running { runner, tasks: vec![scheduler, pollers] }
}

/// This replica's lease-owner name, kept in `data_dir` so that a restarted process takes its own
/// leases (pollers, schedule claims) back at once instead of waiting for them to expire.
pub fn owner(data_dir: &Path, role: &str) -> anyhow::Result<String> {
    let path = data_dir.join("event-sources-owner");
    if let Ok(name) = std::fs::read_to_string(&path) {
        let name = name.trim();
        if !name.is_empty() {
            return Ok(name.to_owned());
        }
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    let name = format!("{role}-{}", lamina_common::ids::random_uuid().simple());
    std::fs::write(&path, &name).with_context(|| format!("write {}", path.display()))?;
    Ok(name)
}
