//! End-to-end tests of the function control plane through the Rust AWS SDK, on SQLite and Postgres.

mod admin;
mod concurrency;
mod events;
mod functions;
mod permissions;
mod sigv4;
mod tenancy;
mod validation;
mod versions;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use lamina_tests::python_zip;

/// The error code an SDK call failed with.
pub fn code_of<E, R>(
    result: Result<R, aws_sdk_lambda::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> String
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(ok) => panic!("expected an error, got {ok:?}"),
        Err(err) => {
            err.as_service_error().and_then(|e| e.code()).map(str::to_owned).unwrap_or_else(|| format!("{err:?}"))
        }
    }
}

/// The HTTP status of a failed SDK call.
pub fn status_of<E, R>(
    result: &Result<R, aws_sdk_lambda::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> u16 {
    match result {
        Ok(_) => 200,
        Err(err) => err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0),
    }
}

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
