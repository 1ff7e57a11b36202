//! Resource policies: one statement list per (function, qualifier), changed one statement at a time.

use anyhow::Context as _;
use lamina_common::policy::Statement;
use lamina_common::{ApiError, ApiResult, time::now_ms};
use serde_json::json;

use crate::functions::{LATEST, not_found};
use crate::store::{in_tx, locked};
use crate::{Metadata, on_pool};

/// The policy size limit (POL-9), in bytes of the document GetPolicy returns.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// The policy of one ARN.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub statements: Vec<Statement>,
    pub revision_id: String,
}

impl Policy {
    /// The policy document as GetPolicy returns it (and as its size limit counts it).
    pub fn document(&self) -> String {
        document(&self.statements)
    }
}

fn document(statements: &[Statement]) -> String {
    json!({ "Version": "2012-10-17", "Id": "default", "Statement": statements }).to_string()
}

fn policy_revision_mismatch() -> ApiError {
    ApiError::PreconditionFailed(
        "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the \
         latest Revision Id"
            .into(),
    )
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    statements: String,
    revision_id: String,
}

impl PolicyRow {
    /// The stored policy, `None` when it holds no statements.
    fn parse(self) -> ApiResult<Option<Policy>> {
        let statements: Vec<Statement> = serde_json::from_str(&self.statements).context("parse stored policy")?;
        Ok((!statements.is_empty()).then_some(Policy { statements, revision_id: self.revision_id }))
    }
}

const SELECT: &str =
    "select statements, revision_id from policies where account_id = $1 and function_name = $2 and qualifier = $3";
const UPSERT: &str = "insert into policies (account_id, function_name, qualifier, statements, revision_id, created_at, \
                      updated_at) values ($1, $2, $3, $4, $5, $6, $6) on conflict (account_id, function_name, qualifier) \
                      do update set statements = excluded.statements, revision_id = excluded.revision_id, \
                      updated_at = excluded.updated_at";

/// Inside [`in_tx!`]: checks that the function and the qualifier (`""`: none, `$LATEST`, a version,
/// an alias) exist, and returns the stored policy. Every policy change locks the function's
/// `$LATEST` row (Postgres; SQLite's `begin immediate` serialises all writers), so two changes of
/// one function's policies run one after the other and neither loses the other's statement; the
/// version or alias row is share-locked so it cannot be deleted (with its policy) meanwhile.
macro_rules! lock_policy {
    ($tx:ident, $locks:ident, $account_id:expr, $name:expr, $qualifier:expr) => {{
        let (account_id, name, qualifier): (&str, &str, &str) = ($account_id, $name, $qualifier);
        let missing = || not_found(account_id, name, (!qualifier.is_empty()).then_some(qualifier));
        let latest = "select version from function_versions where account_id = $1 and function_name = $2 \
                      and version = '$LATEST'";
        let found: Option<String> = sqlx::query_scalar(locked(latest, $locks.update))
            .bind(account_id)
            .bind(name)
            .fetch_optional(&mut *$tx)
            .await
            .context("lock function")?;
        if found.is_none() {
            return Err(missing());
        }
        if !qualifier.is_empty() && qualifier != LATEST {
            let select = if qualifier.bytes().all(|b| b.is_ascii_digit()) {
                "select version from function_versions where account_id = $1 and function_name = $2 and version = $3"
            } else {
                "select alias_name from aliases where account_id = $1 and function_name = $2 and alias_name = $3"
            };
            let found: Option<String> = sqlx::query_scalar(locked(select, $locks.share))
                .bind(account_id)
                .bind(name)
                .bind(qualifier)
                .fetch_optional(&mut *$tx)
                .await
                .context("lock qualifier")?;
            if found.is_none() {
                return Err(missing());
            }
        }
        let row: Option<PolicyRow> = sqlx::query_as(SELECT)
            .bind(account_id)
            .bind(name)
            .bind(qualifier)
            .fetch_optional(&mut *$tx)
            .await
            .context("load policy")?;
        match row {
            Some(row) => row.parse()?,
            None => None,
        }
    }};
}

impl Metadata {
    /// The policy of `qualifier` (`""` = unqualified ARN), if it has statements.
    pub async fn get_policy(&self, account_id: &str, name: &str, qualifier: &str) -> ApiResult<Option<Policy>> {
        let row = on_pool!(&self.store, pool => sqlx::query_as::<_, PolicyRow>(SELECT)
            .bind(account_id).bind(name).bind(qualifier).fetch_optional(pool).await)
        .context("load policy")?;
        match row {
            None => Ok(None),
            Some(r) => r.parse(),
        }
    }

    /// AddPermission: appends `statement` to the policy of `qualifier` (`""` = unqualified ARN) in one
    /// transaction and returns the new policy. Fails when the function or qualifier does not exist
    /// (`ResourceNotFoundException`, with a regionless ARN), when `expected_revision` is not the
    /// policy's (`PreconditionFailedException`), when the Sid is taken (`ResourceConflictException`)
    /// or when the policy would outgrow [`MAX_POLICY_BYTES`] (`PolicyLengthExceededException`).
    pub async fn add_permission(
        &self,
        account_id: &str,
        name: &str,
        qualifier: &str,
        statement: Statement,
        expected_revision: Option<&str>,
    ) -> ApiResult<Policy> {
        let _invalidates = self.cache.writing();
        let policy = in_tx!(&self.store, tx, locks => {
            let existing = lock_policy!(tx, locks, account_id, name, qualifier);
            if let (Some(expected), Some(policy)) = (expected_revision, &existing)
                && expected != policy.revision_id
            {
                return Err(policy_revision_mismatch());
            }
            let mut statements = existing.map(|p| p.statements).unwrap_or_default();
            if statements.iter().any(|s| s.sid == statement.sid) {
                return Err(ApiError::ResourceConflict(format!(
                    "The statement id ({}) provided already exists. Please provide a new statement id, or remove \
                     the existing statement.",
                    statement.sid
                )));
            }
            statements.push(statement);
            let size = document(&statements).len();
            if size > MAX_POLICY_BYTES {
                return Err(ApiError::PolicyLengthExceeded(format!(
                    "The final policy size ({size}) is bigger than the limit ({MAX_POLICY_BYTES})."
                )));
            }
            let policy = Policy { statements, revision_id: uuid::Uuid::new_v4().to_string() };
            let text = serde_json::to_string(&policy.statements).context("serialise policy")?;
            sqlx::query(UPSERT)
                .bind(account_id).bind(name).bind(qualifier).bind(&text).bind(&policy.revision_id).bind(now_ms())
                .execute(&mut *tx).await.context("store policy")?;
            policy
        });
        Ok(policy)
    }

    /// RemovePermission: drops the statement `sid` from the policy of `qualifier` in one transaction
    /// and returns what is left. Fails when the function or qualifier does not exist, when
    /// `expected_revision` is not the policy's, or when no statement has that Sid
    /// (`ResourceNotFoundException`).
    pub async fn remove_permission(
        &self,
        account_id: &str,
        name: &str,
        qualifier: &str,
        sid: &str,
        expected_revision: Option<&str>,
    ) -> ApiResult<Policy> {
        let _invalidates = self.cache.writing();
        let policy = in_tx!(&self.store, tx, locks => {
            let existing = lock_policy!(tx, locks, account_id, name, qualifier).unwrap_or_default();
            if expected_revision.is_some_and(|expected| expected != existing.revision_id) {
                return Err(policy_revision_mismatch());
            }
            let mut statements = existing.statements;
            let before = statements.len();
            statements.retain(|s| s.sid != sid);
            if statements.len() == before {
                return Err(ApiError::ResourceNotFound(format!("Statement {sid} is not found in resource policy.")));
            }
            let policy = Policy { statements, revision_id: uuid::Uuid::new_v4().to_string() };
            if policy.statements.is_empty() {
                sqlx::query("delete from policies where account_id = $1 and function_name = $2 and qualifier = $3")
                    .bind(account_id).bind(name).bind(qualifier).execute(&mut *tx).await.context("delete policy")?;
            } else {
                let text = serde_json::to_string(&policy.statements).context("serialise policy")?;
                sqlx::query(UPSERT)
                    .bind(account_id).bind(name).bind(qualifier).bind(&text).bind(&policy.revision_id).bind(now_ms())
                    .execute(&mut *tx).await.context("store policy")?;
            }
            policy
        });
        Ok(policy)
    }
}
