//! Errors of the execution host that a caller branches on.

/// Why an invocation could not be run. A failing function is not an error: see
/// [`crate::InvokeOutcome::function_error`].
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The host's memory budget or sandbox cap is full; the caller answers 429.
    #[error("no capacity for a new sandbox on this host")]
    NoCapacity,
    /// Anything else (unreadable code package, spawn failure, missing isolation, ...).
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}
