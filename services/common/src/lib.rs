//! Types shared by every Lamina service: errors in AWS shape, names and ARNs, timestamps.
pub mod error;
pub mod function;
pub mod id;
pub mod ids;
pub mod names;
pub mod policy;
pub mod session;
pub mod telemetry;
pub mod time;

pub use error::{ApiError, ApiResult};
pub use function::FunctionSnapshot;
pub use id::{AccountId, FunctionName, Qualifier};
