//! End-to-end tests of the function control plane through the Rust AWS SDK, on SQLite and Postgres.

mod admin;
mod concurrency;
mod cross_account;
mod events;
mod functions;
mod hostile_front_door;
mod permissions;
mod secrets_at_rest;
mod session_credentials;
mod shared_blobs;
mod sigv4;
mod tenancy;
mod validation;
mod versions;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use lamina_tests::python_zip;

pub use lamina_tests::{code_of, status_of};

pub use lamina_tests::error_of;

/// A CreateFunction request for a small Python function, ready to adjust.
pub fn create_python(
    client: &aws_sdk_lambda::Client,
    name: &str,
) -> aws_sdk_lambda::operation::create_function::builders::CreateFunctionFluentBuilder {
    client
        .create_function()
        .function_name(name)
        .runtime(Runtime::from("python3.11"))
        .role("arn:aws:iam::123456789012:role/lambda-role")
        .handler("lambda_function.handler")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(python_zip("def handler(event, context):\n    return event\n")))
                .build(),
        )
}
