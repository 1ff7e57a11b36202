//! The Prometheus families each process serves on `/metrics`: the recorder is installed and every
//! family the process records is described (so it renders with `# HELP`) before any service starts.

/// Which process this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// `lamina serve`: every service in one process.
    Serve,
    Frontend,
    Metadata,
    CodeStorage,
    InvokeRouter,
    AsyncQueue,
    ExecHost,
}

/// Installs the process's recorder and describes the families `process` records.
pub fn install(process: Process) {
    lamina_frontend::prometheus();
    let all = process == Process::Serve;
    // Every process but the frontend serves gRPC (`lamina serve` serves none: it calls in process).
    if !matches!(process, Process::Frontend | Process::Serve) {
        lamina_rpc::server_metrics::describe();
    }
    if all || process == Process::Frontend {
        lamina_frontend::metrics::describe();
    }
    if all || process == Process::Metadata {
        lamina_metadata::metrics::describe();
    }
    if matches!(process, Process::Frontend | Process::InvokeRouter | Process::AsyncQueue | Process::ExecHost) {
        lamina_fleet::metrics::describe();
    }
    if all || process == Process::InvokeRouter {
        lamina_invoke_router::metrics_names::describe();
    }
    if all || process == Process::AsyncQueue {
        lamina_async_queue::metrics::describe();
        lamina_event_sources::metrics::describe();
    }
    if all || process == Process::ExecHost {
        lamina_exec_host::metrics::describe();
    }
    // Function-telemetry shipping (router, exec-host, `lamina serve`) describes its families
    // when its shipper starts.
}
