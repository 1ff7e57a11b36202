//! Types shared by every Lamina service.
pub mod function;
pub use function::FunctionSnapshot;
