//! The function's execution role, which stream records name as `invokeIdentityArn`.
//!
//! Pollers reach the state only through [`EventSourcesClient`], so the lookup is an operation of
//! this crate's service (`FunctionRole`) answered from the metadata database; in process it is
//! answered directly.

use lamina_common::names::FunctionRef;
use lamina_common::{ApiError, ApiResult};

use crate::{EventSources, EventSourcesClient};

const OP: &str = "FunctionRole";

/// Answers `FunctionRole`; `None` for any other operation (`EventSources::dispatch` routes here).
pub(crate) async fn dispatch(local: &EventSources, op: &str, json: &[u8]) -> Option<ApiResult<Vec<u8>>> {
    if op != OP {
        return None;
    }
    Some(
        async {
            let (account_id, function_arn): (String, String) = crate::decode(op, json)?;
            crate::encode(&function_role(local, &account_id, &function_arn).await?)
        }
        .await,
    )
}

/// The role of the version `function_arn` names (an alias through its version, unqualified as
/// `$LATEST`) in `account_id`; `None` when the function does not exist.
async fn function_role(local: &EventSources, account_id: &str, function_arn: &str) -> ApiResult<Option<String>> {
    let r = FunctionRef::parse(function_arn, "FunctionName")?;
    let account = r.account_id.as_deref().unwrap_or(account_id);
    if account != account_id {
        return Ok(None);
    }
    let qualifier = r.qualifier.unwrap_or_else(|| "$LATEST".to_owned());
    let sql = "select v.role from function_versions v \
               where v.account_id = $1 and v.function_name = $2 and v.version = coalesce( \
                 (select a.function_version from aliases a \
                  where a.account_id = $1 and a.function_name = $2 and a.alias_name = $3), $3)";
    lamina_metadata::on_pool!(&local.store, pool => {
        sqlx::query_scalar::<_, String>(sql).bind(account).bind(&r.name).bind(&qualifier).fetch_optional(pool).await
    })
    .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("read the function's role")))
}

impl EventSourcesClient {
    /// The execution role of the mapping's function, `None` when it does not exist.
    pub(crate) async fn function_role(&self, account_id: &str, function_arn: &str) -> ApiResult<Option<String>> {
        match self {
            // In process the answer needs no routing through `EventSources::dispatch`.
            Self::Local(local) => function_role(local, account_id, function_arn).await,
            Self::Grpc(_) => self.call(OP, &(account_id, function_arn)).await,
        }
    }
}
