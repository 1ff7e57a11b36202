//! Runs a future to completion even if the caller stops waiting for it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Polls `inner` in the caller's task (no spawn, no hop to another worker thread on the hot path);
/// if dropped before `inner` finished (the client went away), hands `inner` to a new task so the
/// invocation still ends normally and releases its sandbox and concurrency slot.
pub(crate) struct RunToCompletion<F: Future + Send + 'static>
where
    F::Output: Send + 'static,
{
    inner: Option<Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> RunToCompletion<F>
where
    F::Output: Send + 'static,
{
    pub(crate) fn new(inner: F) -> Self {
        Self { inner: Some(Box::pin(inner)) }
    }
}

impl<F: Future + Send + 'static> Future for RunToCompletion<F>
where
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(inner) = self.inner.as_mut() else {
            panic!("RunToCompletion polled after completion");
        };
        let out = inner.as_mut().poll(cx);
        if out.is_ready() {
            self.inner = None;
        }
        out
    }
}

impl<F: Future + Send + 'static> Drop for RunToCompletion<F>
where
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn finishes_inline() {
        assert_eq!(RunToCompletion::new(async { 7 }).await, 7);
    }

    #[tokio::test]
    async fn an_abandoned_run_still_finishes() {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let run = RunToCompletion::new(async move {
            let _ = go_rx.await;
            let _ = done_tx.send("finished");
        });
        // The caller gives up while the run waits.
        assert!(tokio::time::timeout(Duration::from_millis(10), run).await.is_err());
        go_tx.send(()).expect("run still alive");
        assert_eq!(done_rx.await, Ok("finished"));
    }
}
