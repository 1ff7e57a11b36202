//! What code storage's S3 API needs from the rest of Lamina, implemented once for both modes (in
//! process with `lamina serve`, over gRPC in the `lamina code-storage` process): who signed a request,
//! whether S3 may invoke a function, the durable hand-off of its notifications, and the account's
//! storage quota.
//!
//! These live here, not in code storage, because they are metadata and async-queue calls: code
//! storage stays free of both, and the same clients the other services use serve here too.

mod credentials;
mod events;
mod quota;

pub use credentials::KeyCredentials;
pub use events::FunctionEvents;
pub use quota::AccountQuota;
