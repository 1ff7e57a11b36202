//! The sqs poller.

use super::PollContext;

/// Reads the mapping's source and invokes its function with batches until `ctx.stop`.
pub async fn run(ctx: PollContext) -> anyhow::Result<()> {
    ctx.stop.cancelled().await;
    Ok(())
}
