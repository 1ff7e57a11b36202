//! Pollers: the manager that runs one poller per enabled mapping across replicas (a database
//! lease per mapping), and one poller per source kind.
//! (Helper H3 owns this file; H4 owns `sqs.rs` and `rabbitmq.rs`, H5 `kinesis.rs`.)

pub mod kinesis;
pub mod rabbitmq;
pub mod sqs;

use tokio_util::sync::CancellationToken;

use crate::EventSourcesClient;
use crate::invoker::Invoker;
use crate::mappings::EventSourceMapping;

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
    /// Cancelled when the poller must stop: the mapping was disabled, updated or deleted, this
    /// replica lost the mapping's lease, or the process is shutting down. A poller finishes (or
    /// abandons) its batch, without checkpointing past what succeeded, and returns.
    pub stop: CancellationToken,
}

/// Runs the poller manager until `shutdown`.
pub async fn run_manager(
    client: EventSourcesClient,
    invoker: Invoker,
    owner: String,
    region: String,
    shutdown: CancellationToken,
) {
    let _ = (client, invoker, owner, region);
    shutdown.cancelled().await;
}
