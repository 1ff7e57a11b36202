//! The one error type every API path returns, and its AWS wire shape.

use http::StatusCode;

/// An error as an AWS SDK sees it: `x-amzn-ErrorType`, HTTP status and message.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Model constraint violations (pattern, length, range, enum, required).
    #[error("{}", validation_message(.0))]
    Validation(Vec<String>),
    /// A `ValidationException` worded freely, as the EventBridge, SQS-style and CloudWatch APIs word them.
    #[error("{0}")]
    ValidationMessage(String),
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    InvalidRequestContent(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    ResourceConflict(String),
    /// The resource is mid-transition (an event-source mapping still `Creating`, `Updating`, ...).
    #[error("{0}")]
    ResourceInUse(String),
    #[error("{0}")]
    CodeStorageExceeded(String),
    #[error("{0}")]
    PolicyLengthExceeded(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    RequestTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    TooManyRequests { message: String, reason: &'static str },
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    InvalidSignature(String),
    #[error("{0}")]
    IncompleteSignature(String),
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// Session credentials past their expiry.
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    #[error("{0}")]
    UnknownOperation(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    /// A quota reached (EventBridge's rules per account, targets per rule).
    #[error("{0}")]
    LimitExceeded(String),
    /// Anything unexpected: logged with details, answered with a generic message.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn validation_message(errors: &[String]) -> String {
    let n = errors.len();
    let noun = if n == 1 { "error" } else { "errors" };
    format!("{n} validation {noun} detected: {}", errors.join("; "))
}

impl ApiError {
    /// The `x-amzn-ErrorType` value.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Validation(_) | Self::ValidationMessage(_) => "ValidationException",
            Self::InvalidParameterValue(_) => "InvalidParameterValueException",
            Self::InvalidRequestContent(_) => "InvalidRequestContentException",
            Self::ResourceNotFound(_) => "ResourceNotFoundException",
            Self::ResourceConflict(_) => "ResourceConflictException",
            Self::ResourceInUse(_) => "ResourceInUseException",
            Self::CodeStorageExceeded(_) => "CodeStorageExceededException",
            Self::PolicyLengthExceeded(_) => "PolicyLengthExceededException",
            Self::PreconditionFailed(_) => "PreconditionFailedException",
            Self::RequestTooLarge(_) => "RequestEntityTooLargeException",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaTypeException",
            Self::TooManyRequests { .. } => "TooManyRequestsException",
            Self::AccessDenied(_) => "AccessDeniedException",
            Self::InvalidSignature(_) => "InvalidSignatureException",
            Self::IncompleteSignature(_) => "IncompleteSignatureException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::ExpiredToken => "ExpiredTokenException",
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::UnknownOperation(_) => "UnknownOperationException",
            Self::ServiceUnavailable(_) => "ServiceUnavailableException",
            Self::LimitExceeded(_) => "LimitExceededException",
            Self::Internal(_) => "ServiceException",
        }
    }

    /// The HTTP status AWS Lambda uses for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_)
            | Self::ValidationMessage(_)
            | Self::InvalidParameterValue(_)
            | Self::InvalidRequestContent(_)
            | Self::ResourceInUse(_)
            | Self::CodeStorageExceeded(_)
            | Self::PolicyLengthExceeded(_)
            | Self::LimitExceeded(_)
            | Self::IncompleteSignature(_) => StatusCode::BAD_REQUEST,
            Self::ResourceNotFound(_) | Self::UnknownOperation(_) => StatusCode::NOT_FOUND,
            Self::ResourceConflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::RequestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::AccessDenied(_)
            | Self::InvalidSignature(_)
            | Self::UnrecognizedClient
            | Self::ExpiredToken
            | Self::MissingAuthenticationToken => StatusCode::FORBIDDEN,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Shorthand for the usual "Function not found" error.
    pub fn function_not_found(arn: &str) -> Self {
        Self::ResourceNotFound(format!("Function not found: {arn}"))
    }

    /// Builds a one-violation `ValidationException`.
    pub fn invalid(value: &str, member: &str, constraint: &str) -> Self {
        Self::Validation(vec![violation(value, member, constraint)])
    }
}

/// One model-constraint violation in AWS's fixed wording.
pub fn violation(value: &str, member: &str, constraint: &str) -> String {
    format!("Value '{value}' at '{member}' failed to satisfy constraint: {constraint}")
}

/// The HTTP answer (only the frontend builds one, so only it enables the `axum` feature).
#[cfg(feature = "axum")]
impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "internal error");
                "An internal error occurred. Retry the request.".to_owned()
            }
            other => other.to_string(),
        };
        let kind = if status.is_server_error() { "Service" } else { "User" };
        let mut body = serde_json::json!({ "Type": kind, "Message": message });
        if let Self::TooManyRequests { reason, .. } = &self {
            body["Reason"] = serde_json::Value::from(*reason);
        }
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert("x-amzn-ErrorType", http::HeaderValue::from_static(self.error_type()));
        response
    }
}

/// Result alias for API paths.
pub type ApiResult<T> = Result<T, ApiError>;
