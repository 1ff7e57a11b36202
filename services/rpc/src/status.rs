//! Errors as data: a service's error travels in a gRPC status's `details` as a `ServiceError`, so
//! the caller gets back the error the in-process call would have returned.

use lamina_common::ApiError;
use prost::Message as _;
use tonic::{Code, Status};

use crate::common::ServiceError;

/// A status carrying `error_type`, `message` and `reason` as data.
pub fn service_status(code: Code, error_type: &str, message: &str, reason: &str) -> Status {
    let detail = ServiceError { error_type: error_type.into(), message: message.into(), reason: reason.into() };
    Status::with_details(code, message.to_owned(), detail.encode_to_vec().into())
}

/// The `ServiceError` a peer put in the status, if any (transport failures carry none).
pub fn service_error(status: &Status) -> Option<ServiceError> {
    ServiceError::decode(status.details()).ok().filter(|e| !e.error_type.is_empty())
}

/// Whether a call failed while connecting: the request never reached the peer, so another replica
/// may take it without risk of running it twice.
pub fn never_connected(status: &Status) -> bool {
    if service_error(status).is_some() {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        if e.to_string().contains("tcp connect error") {
            return true;
        }
        source = e.source();
    }
    false
}

/// The status an `ApiError` travels as.
pub fn to_status(err: ApiError) -> Status {
    let code = match err.status().as_u16() {
        400 | 413 | 415 => Code::InvalidArgument,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::AlreadyExists,
        412 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        _ => Code::Internal,
    };
    let reason = match &err {
        ApiError::TooManyRequests { reason, .. } => *reason,
        ApiError::ValidationMessage(_) => FREE_VALIDATION,
        _ => "",
    };
    let message = match &err {
        ApiError::Internal(e) => {
            // Logged where it happened; the peer answers the generic message.
            tracing::error!(error = format!("{e:#}"), "internal error");
            "An internal error occurred. Retry the request.".to_owned()
        }
        ApiError::Validation(v) => v.join("\n"),
        other => other.to_string(),
    };
    service_status(code, err.error_type(), &message, reason)
}

/// The reason marking a freely worded `ValidationException` ([`ApiError::ValidationMessage`]).
const FREE_VALIDATION: &str = "FreelyWorded";

/// Reasons of `TooManyRequestsException` (the enum holds static strings).
const REASONS: &[&str] = &[
    "ConcurrentInvocationLimitExceeded",
    "ReservedFunctionConcurrentInvocationLimitExceeded",
    "FunctionInvocationRateLimitExceeded",
    "CallerRateLimitExceeded",
];

/// The `ApiError` a status stands for; `peer` names the service for transport failures.
pub fn from_status(status: Status, peer: &str) -> ApiError {
    let Some(e) = service_error(&status) else {
        return match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                ApiError::ServiceUnavailable(format!("The {peer} service is unavailable. Retry the request."))
            }
            _ => ApiError::Internal(anyhow::anyhow!("{peer}: {status}")),
        };
    };
    let m = e.message;
    match e.error_type.as_str() {
        "ValidationException" if e.reason == FREE_VALIDATION => ApiError::ValidationMessage(m),
        "ValidationException" => ApiError::Validation(m.split('\n').map(str::to_owned).collect()),
        "InvalidParameterValueException" => ApiError::InvalidParameterValue(m),
        "InvalidRequestContentException" => ApiError::InvalidRequestContent(m),
        "ResourceNotFoundException" => ApiError::ResourceNotFound(m),
        "ResourceConflictException" => ApiError::ResourceConflict(m),
        "ResourceInUseException" => ApiError::ResourceInUse(m),
        "CodeStorageExceededException" => ApiError::CodeStorageExceeded(m),
        "PolicyLengthExceededException" => ApiError::PolicyLengthExceeded(m),
        "PreconditionFailedException" => ApiError::PreconditionFailed(m),
        "RequestEntityTooLargeException" => ApiError::RequestTooLarge(m),
        "UnsupportedMediaTypeException" => ApiError::UnsupportedMediaType(m),
        "TooManyRequestsException" => ApiError::TooManyRequests {
            message: m,
            reason: REASONS.iter().find(|r| **r == e.reason).copied().unwrap_or(REASONS[0]),
        },
        "AccessDeniedException" => ApiError::AccessDenied(m),
        "InvalidSignatureException" => ApiError::InvalidSignature(m),
        "IncompleteSignatureException" => ApiError::IncompleteSignature(m),
        "UnrecognizedClientException" => ApiError::UnrecognizedClient,
        "ExpiredTokenException" => ApiError::ExpiredToken,
        "MissingAuthenticationTokenException" => ApiError::MissingAuthenticationToken,
        "UnknownOperationException" => ApiError::UnknownOperation(m),
        "ServiceUnavailableException" => ApiError::ServiceUnavailable(m),
        "LimitExceededException" => ApiError::LimitExceeded(m),
        other => ApiError::Internal(anyhow::anyhow!("{peer}: {other}: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(err: ApiError) -> ApiError {
        from_status(to_status(err), "test")
    }

    #[test]
    fn errors_keep_their_type_message_and_reason() {
        let cases = vec![
            ApiError::ResourceNotFound("Function not found: arn:x".into()),
            ApiError::ResourceConflict("exists".into()),
            ApiError::ResourceInUse("in use".into()),
            ApiError::PreconditionFailed("revision".into()),
            ApiError::TooManyRequests {
                message: "Rate Exceeded.".into(),
                reason: "ReservedFunctionConcurrentInvocationLimitExceeded",
            },
            ApiError::Validation(vec!["a".into(), "b; c".into()]),
            ApiError::ServiceUnavailable("draining".into()),
            ApiError::LimitExceeded("The requested resource exceeds the maximum number allowed.".into()),
            ApiError::UnrecognizedClient,
            ApiError::ExpiredToken,
        ];
        for err in cases {
            let (ty, status, text) = (err.error_type(), err.status(), err.to_string());
            let back = round_trip(err);
            assert_eq!((back.error_type(), back.status(), back.to_string()), (ty, status, text));
        }
        let back = round_trip(ApiError::TooManyRequests { message: "m".into(), reason: "CallerRateLimitExceeded" });
        assert!(matches!(back, ApiError::TooManyRequests { reason: "CallerRateLimitExceeded", .. }));
    }

    #[test]
    fn internal_details_stay_home_and_transport_failures_are_unavailable() {
        let back = round_trip(ApiError::Internal(anyhow::anyhow!("secret path /var/x")));
        assert_eq!(back.error_type(), "ServiceException");
        assert!(!format!("{back:#}").contains("/var/x"));
        let down = from_status(Status::unavailable("connection refused"), "exec-host");
        assert_eq!(down.status().as_u16(), 503);
        assert!(down.to_string().contains("exec-host"));
    }
}
