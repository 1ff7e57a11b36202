//! Errors of the execution host that a caller branches on.

/// Why an invocation could not be run. A failing function is not an error: see
/// [`crate::InvokeOutcome::function_error`].
///
/// Which ones may be retried on another host: [`ExecError::retryable_elsewhere`].
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The host is draining for shutdown and takes no new invocations.
    #[error("execution host is shutting down")]
    Draining,
    /// The host's memory budget or sandbox cap is full (a single host answers 429).
    #[error("no capacity for a new sandbox on this host")]
    NoCapacity,
    /// The host cannot start sandboxes safely (isolation required but incomplete); names what is
    /// missing.
    #[error("sandbox isolation unavailable: {0}")]
    IsolationUnavailable(String),
    /// The function's runtime (named) is not configured on this host.
    #[error("runtime {0:?} is not installed on this host")]
    RuntimeNotInstalled(String),
    /// A remote host could not be reached, or its connection failed mid-call (names the host
    /// and the transport error). The invocation may have started.
    #[error("execution host unreachable: {0}")]
    Unreachable(String),
    /// Anything else (unreadable code package, spawn failure, ...).
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ExecError {
    /// Whether another host may run the invocation: this one refused it before starting it
    /// because it is going away, full, or unable to run it. Not `Unreachable` (the invocation may
    /// have started) nor `Internal` (nothing says the cause is local to this host).
    pub fn retryable_elsewhere(&self) -> bool {
        match self {
            Self::Draining | Self::NoCapacity | Self::IsolationUnavailable(_) | Self::RuntimeNotInstalled(_) => true,
            Self::Unreachable(_) | Self::Internal(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ExecError;

    #[test]
    fn only_internal_errors_stay_on_this_host() {
        let cases = [
            (ExecError::Draining, true),
            (ExecError::NoCapacity, true),
            (ExecError::IsolationUnavailable("cgroups: not mounted".into()), true),
            (ExecError::RuntimeNotInstalled("python3.99".into()), true),
            (ExecError::Unreachable("host-a: connection reset".into()), false),
            (ExecError::Internal(anyhow::anyhow!("unpack function code")), false),
        ];
        for (err, elsewhere) in cases {
            assert_eq!(err.retryable_elsewhere(), elsewhere, "{err}");
        }
    }
}
