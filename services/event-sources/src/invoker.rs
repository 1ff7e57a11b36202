//! Synchronous invocations on behalf of an event source (a poller's batch, a destination check):
//! through the invoke router, as the function's owner, with the outcome reduced to what a poller
//! decides on.

use bytes::Bytes;
use lamina_common::ApiError;
use lamina_common::names::FunctionRef;
use lamina_common::{AccountId, FunctionName, Qualifier};
use lamina_invoke_router::{InvocationType, InvokeOutcome, InvokeRequest, RouterClient};

/// How one synchronous invocation of a batch ended.
#[derive(Debug, Clone)]
pub enum BatchResult {
    /// The function returned this payload.
    Succeeded(Bytes),
    /// The function failed (error, timeout, crash); the payload is its error document.
    FunctionError(Bytes),
    /// Throttled or a service error: the same batch may be tried again later.
    Retryable(String),
    /// The function cannot be invoked (gone, invalid): retrying the same way will not help.
    Failed(String),
}

/// Invokes functions through the invoke router. Cheap to clone.
#[derive(Clone)]
pub struct Invoker {
    router: RouterClient,
}

impl Invoker {
    pub fn new(router: RouterClient) -> Self {
        Self { router }
    }

    /// Invokes `function_arn` (a name, partial or full ARN, qualified or not) in `account_id`
    /// synchronously with `payload`.
    pub async fn invoke(&self, account_id: &str, function_arn: &str, payload: Bytes) -> BatchResult {
        let request = match request(account_id, function_arn, payload) {
            Ok(r) => r,
            Err(e) => return BatchResult::Failed(e.to_string()),
        };
        match self.router.invoke(request).await {
            Ok(InvokeOutcome::Ran(ran)) if ran.function_error => BatchResult::FunctionError(ran.payload),
            Ok(InvokeOutcome::Ran(ran)) => BatchResult::Succeeded(ran.payload),
            Ok(other) => BatchResult::Failed(format!("unexpected outcome {other:?}")),
            Err(e @ (ApiError::TooManyRequests { .. } | ApiError::ServiceUnavailable(_) | ApiError::Internal(_))) => {
                BatchResult::Retryable(format!("{}: {e}", e.error_type()))
            }
            Err(e) => BatchResult::Failed(format!("{}: {e}", e.error_type())),
        }
    }
}

fn request(account_id: &str, function_arn: &str, payload: Bytes) -> Result<InvokeRequest, ApiError> {
    let r = FunctionRef::parse(function_arn, "FunctionName")?;
    let account = r.account_id.as_deref().unwrap_or(account_id);
    Ok(InvokeRequest {
        account_id: AccountId::parse(account)?,
        function_name: FunctionName::parse(&r.name)?,
        qualifier: r.qualifier.as_deref().map(Qualifier::parse).transpose()?,
        request_id: lamina_common::ids::random_uuid().to_string(),
        invocation_type: InvocationType::RequestResponse,
        payload,
        client_context: None,
        tail_log: false,
    })
}
