//! Entry point of the `request_body` fuzz target (`fuzz/`): each JSON request body goes through
//! the same parse and checks its handler runs before it first needs state (a database, a peer).

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue};
use bytes::Bytes;
use lamina_code_storage::{ZipLimits, validate_zip};
use lamina_common::ApiResult;
use lamina_invoke_router::InvocationType;

use super::{aliases, concurrency, functions, invoke, parse_body, policy, versions};
use crate::{Config, admin};

/// The operations [`request_body`] picks from, by index.
pub const OPERATIONS: &[&str] = &[
    "CreateFunction",
    "UpdateFunctionConfiguration",
    "UpdateFunctionCode",
    "PublishVersion",
    "CreateAlias",
    "UpdateAlias",
    "AddPermission",
    "PutFunctionConcurrency",
    "Invoke (RequestResponse payload)",
    "Invoke (Event payload)",
    "Invoke (X-Amz-Client-Context)",
    "Admin CreateAccount",
    "Admin SetLimits",
];

static LIMITS: LazyLock<Config> = LazyLock::new(|| Config {
    runtimes: vec!["python3.12".into(), "nodejs20.x".into(), "provided.al2023".into()],
    ..Config::default()
});

/// Small unzipped ceiling, so a fuzzed zip bomb costs milliseconds, not seconds.
static ZIP_LIMITS: LazyLock<ZipLimits> = LazyLock::new(|| ZipLimits { max_unzipped: 1 << 20, ..ZipLimits::default() });

/// Parses `body` as the request of operation `op % OPERATIONS.len()` and runs its checks.
pub fn request_body(op: u8, body: &[u8]) -> ApiResult<()> {
    match usize::from(op) % OPERATIONS.len() {
        0 => {
            let req: functions::CreateRequest = parse_body(body)?;
            req.check(&LIMITS)?;
            match &req.code {
                Some(code) => validate_zip(&functions::decode_code(code)?, &ZIP_LIMITS),
                None => Ok(()),
            }
        }
        1 => parse_body::<functions::UpdateConfigRequest>(body)?.check(&LIMITS),
        2 => {
            let req: functions::UpdateCodeRequest = parse_body(body)?;
            validate_zip(&functions::decode_code(&req.code)?, &ZIP_LIMITS)
        }
        3 => parse_body::<versions::PublishRequest>(body)?.check(),
        4 => parse_body::<aliases::AliasRequest>(body)?.check_create(),
        5 => parse_body::<aliases::AliasRequest>(body)?.check_update(),
        6 => parse_body::<policy::AddPermissionRequest>(body)?.check(),
        7 => parse_body::<concurrency::PutRequest>(body)?.check().map(drop),
        8 => invoke::check_payload(&Bytes::copy_from_slice(body), InvocationType::RequestResponse),
        9 => invoke::check_payload(&Bytes::copy_from_slice(body), InvocationType::Event),
        10 => {
            // Bytes a client cannot put in a header never reach the handler.
            let Ok(value) = HeaderValue::from_bytes(body) else { return Ok(()) };
            let mut headers = HeaderMap::new();
            headers.insert("x-amz-client-context", value);
            invoke::client_context(&headers).map(drop)
        }
        11 => admin::parse::<admin::CreateAccount>(&Bytes::copy_from_slice(body)).map(drop),
        _ => admin::parse::<admin::Limits>(&Bytes::copy_from_slice(body)).map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_accepts_a_good_body_and_refuses_a_bad_one() {
        let good: [(&str, &[u8]); 13] = [
            (
                "CreateFunction",
                br#"{"FunctionName":"f","Runtime":"python3.12","Role":"arn:aws:iam::123456789012:role/r","Handler":"index.handler","Code":{"ZipFile":"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}}"#,
            ),
            ("UpdateFunctionConfiguration", br#"{"MemorySize":256,"Timeout":30}"#),
            ("UpdateFunctionCode", br#"{"ZipFile":"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}"#),
            ("PublishVersion", br#"{"Description":"v"}"#),
            ("CreateAlias", br#"{"Name":"live","FunctionVersion":"1"}"#),
            ("UpdateAlias", br#"{"FunctionVersion":"$LATEST"}"#),
            ("AddPermission", br#"{"StatementId":"s","Action":"lambda:InvokeFunction","Principal":"*"}"#),
            ("PutFunctionConcurrency", br#"{"ReservedConcurrentExecutions":5}"#),
            ("Invoke", br#"{"k":1}"#),
            ("Invoke Event", b"[]"),
            ("ClientContext", b"e30="),
            ("CreateAccount", br#"{"Name":"a"}"#),
            ("SetLimits", br#"{"ConcurrentExecutions":10}"#),
        ];
        for (op, (what, body)) in good.iter().enumerate() {
            let op = u8::try_from(op).expect("few operations");
            assert!(request_body(op, body).is_ok(), "{what}: {:?}", request_body(op, body));
            let err = request_body(op, b"{\"").expect_err(what);
            assert!(err.status().is_client_error(), "{what}: {err}");
        }
    }
}
