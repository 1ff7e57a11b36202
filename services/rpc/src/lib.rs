//! The gRPC definitions of Lamina's services (`proto/`), and conversions between their messages
//! and the domain types the services use in process.

pub mod replicas;
pub mod server_metrics;
pub mod status;
pub mod trace;
pub mod transport;

/// Generated code, nested as the proto packages are (`lamina.<service>.v1`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod lamina {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("lamina.common.v1");
        }
    }
    pub mod exechost {
        pub mod v1 {
            tonic::include_proto!("lamina.exechost.v1");
        }
    }
    pub mod codestorage {
        pub mod v1 {
            tonic::include_proto!("lamina.codestorage.v1");
        }
    }
    pub mod router {
        pub mod v1 {
            tonic::include_proto!("lamina.router.v1");
        }
    }
    pub mod queue {
        pub mod v1 {
            tonic::include_proto!("lamina.queue.v1");
        }
    }
    pub mod metadata {
        pub mod v1 {
            tonic::include_proto!("lamina.metadata.v1");
        }
    }
    pub mod events {
        pub mod v1 {
            tonic::include_proto!("lamina.events.v1");
        }
    }
    pub mod observability {
        pub mod v1 {
            tonic::include_proto!("lamina.observability.v1");
        }
    }
}

/// Code storage's API.
pub use lamina::codestorage::v1 as codestorage;
/// Messages shared by every service.
pub use lamina::common::v1 as common;
/// Event sources' state (served by the metadata process).
pub use lamina::events::v1 as events;
/// The execution host's API.
pub use lamina::exechost::v1 as exechost;
/// The metadata service's API.
pub use lamina::metadata::v1 as metadata;
/// Function logs and metrics (served by the metadata process).
pub use lamina::observability::v1 as observability;
/// The async queue's API.
pub use lamina::queue::v1 as queue;
/// The invoke router's API.
pub use lamina::router::v1 as router;

pub use status::{from_status, to_status};
