//! Lamina's execution host: sandboxes running real runtime processes, each with its own Lambda
//! Runtime API endpoint, a warm pool, timeouts, memory limits and log capture.

mod cgroup;
mod code;
mod config;
mod endpoints;
mod ephemeral;
mod error;
mod fd_limit;
mod grpc;
mod host;
mod isolation;
mod logs;
pub mod metrics;
mod net;
mod pool;
mod runtime_api;
mod sandbox;
mod seccomp;
mod spare;
mod spawn;

pub use config::{Config, RuntimeSpec, probe_runtimes};
pub use error::ExecError;
pub use grpc::{HostClient, NOT_CONNECTED, serve};
pub use host::{ExecHost, HostLoad, Invocation, InvokeOutcome, warm_key};
pub use logs::LogEvent;
