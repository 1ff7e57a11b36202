//! The `lamina` binary's library: wiring every service into one process, and the admin CLI.

pub mod cli;
pub mod config_file;
pub mod distributed;
pub mod event_sources;
pub mod prometheus;
pub mod s3;
pub mod serve;
pub mod telemetry;

pub use serve::{Running, ServeOptions};
