//! Coordination primitives for distributed mode, kept in Redis: concurrency leases shared by every
//! router, the registry of execution hosts, and cross-process cache invalidation.
//!
//! Every key starts with a configured prefix (`{prefix}:...`); a trailing `:` on the prefix is
//! ignored, so `lamina` and `lamina:` name the same keys.

mod connection;
pub mod invalidate;
pub mod leases;
pub mod metrics;
pub mod registry;

pub use connection::connect;
pub use invalidate::{Invalidation, Invalidator, Subscription, subscribe};
pub use leases::{Lease, LeaseConfig, Leases};
pub use registry::{HostInfo, HostRegistry, heartbeat_loop, place, spawn_heartbeats};
