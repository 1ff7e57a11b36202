//! Resource policies: one statement list per (function, qualifier).

use anyhow::Context as _;
use lamina_common::policy::Statement;
use lamina_common::{ApiError, ApiResult, time::now_ms};

use crate::{Metadata, on_pool};

/// The policy of one ARN.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub statements: Vec<Statement>,
    pub revision_id: String,
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    statements: String,
    revision_id: String,
}

impl Metadata {
    /// The policy of `qualifier` (`""` = unqualified ARN), if it has statements.
    pub async fn get_policy(&self, account_id: &str, name: &str, qualifier: &str) -> ApiResult<Option<Policy>> {
        let sql = "select statements, revision_id from policies where account_id = $1 and function_name = $2 and qualifier = $3";
        let row = on_pool!(&self.store, pool => sqlx::query_as::<_, PolicyRow>(sql)
            .bind(account_id).bind(name).bind(qualifier).fetch_optional(pool).await)
        .context("load policy")?;
        match row {
            None => Ok(None),
            Some(r) => {
                let statements: Vec<Statement> = serde_json::from_str(&r.statements).context("parse stored policy")?;
                if statements.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(Policy { statements, revision_id: r.revision_id }))
                }
            }
        }
    }

    /// Replaces the statements of a policy, guarded by the revision read before (`None`: must not exist).
    pub async fn put_policy(
        &self,
        account_id: &str,
        name: &str,
        qualifier: &str,
        statements: &[Statement],
        previous_revision: Option<&str>,
    ) -> ApiResult<String> {
        let _invalidates = self.cache.writing();
        let text = serde_json::to_string(statements).context("serialise policy")?;
        let revision = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        let n = match previous_revision {
            None => {
                let sql = "insert into policies (account_id, function_name, qualifier, statements, revision_id, created_at, updated_at) \
                           values ($1, $2, $3, $4, $5, $6, $6) on conflict do nothing";
                on_pool!(&self.store, pool => sqlx::query(sql).bind(account_id).bind(name).bind(qualifier).bind(&text)
                    .bind(&revision).bind(now).execute(pool).await.map(|r| r.rows_affected()))
            }
            Some(prev) => {
                let sql = "update policies set statements = $4, revision_id = $5, updated_at = $6 \
                           where account_id = $1 and function_name = $2 and qualifier = $3 and revision_id = $7";
                on_pool!(&self.store, pool => sqlx::query(sql).bind(account_id).bind(name).bind(qualifier).bind(&text)
                    .bind(&revision).bind(now).bind(prev).execute(pool).await.map(|r| r.rows_affected()))
            }
        }
        .context("store policy")?;
        if n == 0 {
            return Err(ApiError::ResourceConflict("The policy was modified concurrently. Retry the request.".into()));
        }
        Ok(revision)
    }

    /// Revision of the stored row even when it holds no statements (for the write guard).
    pub async fn policy_revision(&self, account_id: &str, name: &str, qualifier: &str) -> ApiResult<Option<String>> {
        let sql = "select revision_id from policies where account_id = $1 and function_name = $2 and qualifier = $3";
        Ok(on_pool!(&self.store, pool => sqlx::query_scalar::<_, String>(sql)
            .bind(account_id).bind(name).bind(qualifier).fetch_optional(pool).await)
        .context("load policy revision")?)
    }
}
