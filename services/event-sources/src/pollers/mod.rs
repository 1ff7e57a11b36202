//! Pollers: the manager that runs one poller per enabled mapping across replicas (a database
//! lease per mapping), and one poller per source kind.
//! (Helper H3 owns this file; H4 owns `sqs.rs` and `rabbitmq.rs`, H5 `kinesis`.)
//!
//! Every replica runs [`run_manager`]. Each tick it reads the mappings that are not at rest in
//! `Disabled` and, for each:
//! - `Enabled`: holds the lease `mapping:<uuid>` (taken when free or expired, renewed every
//!   [`RENEW_EVERY`]) and, while it holds it, runs the source's poller; the poller is stopped when
//!   the mapping leaves `Enabled`, its `LastModified` changes, the lease is lost or on shutdown.
//! - a transitional state (`Creating`, `Enabling`, `Updating`, `Disabling`, `Deleting`): stops this
//!   replica's poller, and once it has returned and the lease is this replica's, settles the state
//!   (`Enabled` or `Disabled` as the user asked, or the row removed). Holding the lease to settle
//!   means a mapping is never reported `Disabled` or deleted while another replica still polls it.
//!
//! A poller that fails is restarted after a backoff, with `LastProcessingResult` set to
//! `PROBLEM: <reason>`.

pub mod kinesis;
pub mod rabbitmq;
pub mod sqs;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use lamina_common::telemetry::TelemetrySink;

use crate::EventSourcesClient;
use crate::invoker::Invoker;
pub use crate::mappings::lease_key;
use crate::mappings::{EventSourceMapping, MappingRecord, SourceKind};

/// What one source poller is given.
#[derive(Clone)]
pub struct PollContext {
    /// The mapping's owner (whose function is invoked).
    pub account_id: String,
    pub mapping: EventSourceMapping,
    /// Checkpoints, processing results.
    pub client: EventSourcesClient,
    pub invoker: Invoker,
    /// The region ARNs and event records name.
    pub region: String,
    /// Where the mapping's `AWS/Lambda` metric samples go (IteratorAge), when function telemetry is on.
    pub telemetry: Option<Arc<dyn TelemetrySink>>,
    /// Cancelled when the poller must stop: the mapping was disabled, updated or deleted, this
    /// replica lost the mapping's lease, or the process is shutting down. A poller finishes (or
    /// abandons) its batch, without checkpointing past what succeeded, and returns.
    pub stop: CancellationToken,
}

/// How often the manager reads the mappings.
pub const TICK: Duration = Duration::from_secs(1);
/// How long a lease lasts unless renewed.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often a held lease is renewed.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How long a replica waits before asking again for a lease another replica holds.
const RETRY_HELD_LEASE: Duration = Duration::from_secs(5);
/// Restart delays of a failing poller (doubling).
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How long shutdown waits for pollers to return before leaving their leases to expire.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the poller manager until `shutdown`.
pub async fn run_manager(
    client: EventSourcesClient,
    invoker: Invoker,
    owner: String,
    region: String,
    telemetry: Option<Arc<dyn TelemetrySink>>,
    shutdown: CancellationToken,
) {
    let mut manager =
        Manager { client, invoker, owner, region, telemetry, shutdown: shutdown.clone(), slots: HashMap::new() };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => manager.tick().await,
        }
    }
    manager.stop_all().await;
}

struct Manager {
    client: EventSourcesClient,
    invoker: Invoker,
    owner: String,
    region: String,
    telemetry: Option<Arc<dyn TelemetrySink>>,
    shutdown: CancellationToken,
    slots: HashMap<String, Slot>,
}

/// This replica's view of one mapping.
struct Slot {
    /// When the lease was last taken or renewed (`None`: not held).
    lease: Option<Instant>,
    /// Not before then ask again for a lease another replica holds.
    next_try: Instant,
    poller: Option<Poller>,
}

struct Poller {
    /// The configuration it runs (`LastModified`).
    last_modified: f64,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Where a transitional state settles; `Deleted` removes the mapping.
fn settled(state: &str, enabled: bool) -> Option<&'static str> {
    match state {
        "Creating" | "Enabling" | "Updating" | "Disabling" => Some(if enabled { "Enabled" } else { "Disabled" }),
        "Deleting" => Some("Deleted"),
        _ => None,
    }
}

impl Manager {
    async fn tick(&mut self) {
        for slot in self.slots.values_mut() {
            if slot.poller.as_ref().is_some_and(|p| p.task.is_finished()) {
                slot.poller = None;
            }
        }
        let records = match self.client.active_mappings().await {
            Ok(records) => records,
            Err(err) => {
                tracing::warn!("event source mappings unreadable, pollers keep their leases meanwhile: {err:#}");
                let keys: Vec<String> = self.slots.keys().cloned().collect();
                for uuid in keys {
                    self.keep_lease(&uuid, false).await;
                }
                return;
            }
        };
        let mut seen = HashSet::with_capacity(records.len());
        for record in records {
            seen.insert(record.mapping.uuid.clone());
            self.visit(record).await;
        }
        // Disabled (by this replica a tick ago) or gone: nothing of them may keep running here.
        let gone: Vec<String> = self.slots.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        for uuid in gone {
            self.retire(&uuid).await;
        }
    }

    async fn visit(&mut self, record: MappingRecord) {
        let uuid = record.mapping.uuid.clone();
        let slot = self.slots.entry(uuid.clone()).or_insert_with(|| Slot {
            lease: None,
            next_try: Instant::now(),
            poller: None,
        });
        let state = record.mapping.state.clone();
        if state == "Enabled" {
            if let Some(p) = &slot.poller
                && p.last_modified != record.mapping.last_modified
            {
                tracing::info!(mapping = %uuid, "configuration changed, restarting the poller");
                p.stop.cancel();
            }
            if !self.keep_lease(&uuid, false).await {
                return;
            }
            let running = self.slots.get(&uuid).is_some_and(|s| s.poller.is_some());
            if !running {
                self.start(&record);
            }
            return;
        }
        let Some(target) = settled(&state, record.enabled) else {
            tracing::warn!(mapping = %uuid, state, "event source mapping in an unknown state");
            return;
        };
        if let Some(p) = &slot.poller {
            // Settle only once this replica's poller has returned; hold the lease meanwhile.
            p.stop.cancel();
            self.keep_lease(&uuid, false).await;
            return;
        }
        // A lease renewed just now: settling on one remembered from up to RENEW_EVERY ago could
        // report a state another replica's poller contradicts.
        if !self.keep_lease(&uuid, true).await {
            return;
        }
        match self.client.settle_mapping_state(&uuid, &state, target).await {
            Ok(true) => {
                tracing::info!(mapping = %uuid, from = state, to = target, "event source mapping settled");
                match target {
                    "Enabled" => {
                        let mut record = record;
                        record.mapping.state = target.to_owned();
                        self.start(&record);
                    }
                    "Disabled" => self.retire(&uuid).await,
                    // The row went with its leases.
                    _ => {
                        self.slots.remove(&uuid);
                    }
                }
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(mapping = %uuid, "settling {state} → {target} failed: {err:#}"),
        }
    }

    /// Takes or renews the mapping's lease when due (`fresh`: now); whether this replica holds it.
    /// A poller running without the lease is told to stop.
    async fn keep_lease(&mut self, uuid: &str, fresh: bool) -> bool {
        let Some(slot) = self.slots.get_mut(uuid) else { return false };
        let now = Instant::now();
        let held = match slot.lease {
            Some(renewed) if !fresh && now.duration_since(renewed) < RENEW_EVERY => true,
            None if now < slot.next_try => false,
            previous => match self.client.acquire_lease(&lease_key(uuid), &self.owner, LEASE_TTL).await {
                Ok(true) => {
                    slot.lease = Some(now);
                    true
                }
                Ok(false) => {
                    if previous.is_some() {
                        tracing::warn!(mapping = %uuid, "lost the mapping's lease to another replica");
                    }
                    slot.lease = None;
                    slot.next_try = now + RETRY_HELD_LEASE;
                    false
                }
                Err(err) => {
                    tracing::warn!(mapping = %uuid, "renewing the mapping's lease failed: {err:#}");
                    // Still ours until it may have expired (with a margin for clocks and delays).
                    match previous {
                        Some(renewed) if !fresh && now.duration_since(renewed) < LEASE_TTL - RENEW_EVERY => true,
                        _ => {
                            slot.lease = None;
                            slot.next_try = now + RETRY_HELD_LEASE;
                            false
                        }
                    }
                }
            },
        };
        if !held && let Some(p) = &slot.poller {
            p.stop.cancel();
        }
        held
    }

    fn start(&mut self, record: &MappingRecord) {
        let uuid = record.mapping.uuid.clone();
        let Some(slot) = self.slots.get_mut(&uuid) else { return };
        let stop = self.shutdown.child_token();
        let ctx = PollContext {
            account_id: record.account_id.clone(),
            mapping: record.mapping.clone(),
            client: self.client.clone(),
            invoker: self.invoker.clone(),
            region: self.region.clone(),
            telemetry: self.telemetry.clone(),
            stop: stop.clone(),
        };
        let span = tracing::info_span!("poller", mapping = %uuid, account_id = %record.account_id);
        tracing::info!(parent: &span, source = ?record.mapping.event_source_arn, "starting the poller");
        let task = tokio::spawn(supervise(ctx).instrument(span));
        slot.poller = Some(Poller { last_modified: record.mapping.last_modified, stop, task });
    }

    /// Stops this replica's work on a mapping that no longer needs it; gives the lease back once
    /// the poller has returned.
    async fn retire(&mut self, uuid: &str) {
        let Some(slot) = self.slots.get_mut(uuid) else { return };
        if let Some(p) = &slot.poller {
            p.stop.cancel();
            if !p.task.is_finished() {
                self.keep_lease(uuid, false).await;
                return;
            }
        }
        if slot.lease.is_some()
            && let Err(err) = self.client.release_lease(&lease_key(uuid), &self.owner).await
        {
            tracing::warn!(mapping = %uuid, "releasing the mapping's lease failed (it expires): {err:#}");
        }
        self.slots.remove(uuid);
    }

    /// Shutdown: every poller stopped, the leases of those that returned given back.
    async fn stop_all(&mut self) {
        for slot in self.slots.values() {
            if let Some(p) = &slot.poller {
                p.stop.cancel();
            }
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        for (uuid, slot) in &mut self.slots {
            if let Some(p) = slot.poller.take() {
                let mut task = p.task;
                if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                    tracing::warn!(mapping = %uuid, "poller still busy at shutdown; its lease expires by itself");
                    task.abort();
                    continue;
                }
            }
            if slot.lease.is_some()
                && let Err(err) = self.client.release_lease(&lease_key(uuid), &self.owner).await
            {
                tracing::warn!(mapping = %uuid, "releasing the mapping's lease failed (it expires): {err:#}");
            }
        }
        self.slots.clear();
    }
}

/// Runs the source's poller until `ctx.stop`, restarting it after a failure (or a panic) with a
/// growing delay and recording the failure as the mapping's `LastProcessingResult`.
async fn supervise(ctx: PollContext) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = Instant::now();
        let outcome = tokio::spawn(run_source(ctx.clone())).await;
        if ctx.stop.is_cancelled() {
            if let Ok(Err(err)) = &outcome {
                tracing::info!("poller stopped: {err:#}");
            }
            return;
        }
        let problem = match outcome {
            Ok(Ok(())) => "the poller stopped unexpectedly".to_owned(),
            Ok(Err(err)) => format!("{err:#}"),
            Err(join) => format!("the poller crashed: {join}"),
        };
        if started.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_MIN;
        }
        tracing::warn!("poller failed, restarting in {backoff:?}: {problem}");
        let result: String = format!("PROBLEM: {problem}").chars().take(1024).collect();
        if let Err(err) = ctx.client.set_processing_result(&ctx.mapping.uuid, &result).await {
            tracing::warn!("recording the poller's failure failed: {err:#}");
        }
        tokio::select! {
            _ = ctx.stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// The poller of the mapping's source kind.
async fn run_source(ctx: PollContext) -> anyhow::Result<()> {
    let arn = ctx.mapping.event_source_arn.clone().unwrap_or_default();
    match SourceKind::of(&arn) {
        Some(SourceKind::Sqs) => sqs::run(ctx).await,
        Some(SourceKind::Kinesis) => kinesis::run(ctx).await,
        Some(SourceKind::Mq) => rabbitmq::run(ctx).await,
        None => anyhow::bail!("no poller reads {arn}"),
    }
}
