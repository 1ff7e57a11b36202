//! Code storage's S3 API as the rest of Lamina uses it: deployment packages from buckets
//! (CreateFunction / UpdateFunctionCode with `S3Bucket`/`S3Key`/`S3ObjectVersion`), GetFunction's
//! presigned `Code.Location`, and S3 event notifications delivered as Event invocations. On SQLite,
//! Postgres and the cluster (`lamina cluster`: the S3 API in the code-storage process).

mod notifications;
mod packages;
mod thumbnail;

use aws_sdk_s3::primitives::ByteStream;
use lamina_tests::{Tenant, TestEnv};

pub use lamina_tests::error_of as lambda_error;

/// The S3 error code an SDK call failed with (panics on success).
pub fn s3_error<E, R>(
    result: Result<R, aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(ok) => panic!("expected an error, got {ok:?}"),
        Err(err) => {
            err.as_service_error().and_then(|e| e.code()).map(str::to_owned).unwrap_or_else(|| format!("{err:?}"))
        }
    }
}

/// A bucket name no other test (or run) uses: names are global across tenants.
pub fn bucket_name(label: &str) -> String {
    format!("{label}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Creates `bucket` as `t` and uploads `body` under `key`; returns the version id S3 reports.
pub async fn put(env: &TestEnv, t: &Tenant, bucket: &str, key: &str, body: Vec<u8>) -> Option<String> {
    let s3 = env.s3(t);
    if s3.head_bucket().bucket(bucket).send().await.is_err() {
        s3.create_bucket().bucket(bucket).send().await.expect("create bucket");
    }
    let put = s3.put_object().bucket(bucket).key(key).body(ByteStream::from(body)).send().await.expect("put object");
    put.version_id().map(str::to_owned)
}

/// A Python package whose handler returns `value`.
pub fn returning(value: &str) -> Vec<u8> {
    lamina_tests::python_zip(&format!("def handler(event, context):\n    return {value:?}\n"))
}

pub use lamina_tests::create_python_code as create_python;

/// The payload a synchronous invocation returned.
pub async fn invoke(client: &aws_sdk_lambda::Client, name: &str, qualifier: Option<&str>) -> String {
    let out = client.invoke().function_name(name).set_qualifier(qualifier.map(str::to_owned)).send().await;
    let out = out.expect("invoke");
    assert_eq!(out.function_error(), None, "{:?}", out.payload());
    String::from_utf8(out.payload().map(|p| p.as_ref().to_vec()).unwrap_or_default()).expect("utf-8 payload")
}
