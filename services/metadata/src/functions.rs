//! Functions and their versions.

use anyhow::Context as _;
use lamina_common::{ApiError, ApiResult, time::now_ms};

use crate::{Metadata, on_pool};

/// One stored version of a function (`$LATEST` or a number), as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FunctionRow {
    pub account_id: String,
    pub function_name: String,
    pub version: String,
    pub description: String,
    pub runtime: String,
    pub role: String,
    pub handler: String,
    pub memory_size: i64,
    pub timeout: i64,
    /// JSON object of variables, if any were set.
    pub environment: Option<String>,
    /// JSON of the VpcConfig as given, if any.
    pub vpc_config: Option<String>,
    /// Lowercase hex SHA-256 of the zip.
    pub code_sha256: String,
    pub code_size: i64,
    pub revision_id: String,
    /// Epoch milliseconds.
    pub last_modified: i64,
}

/// Everything CreateFunction stores for `$LATEST`.
#[derive(Debug, Clone)]
pub struct NewFunction {
    pub function_name: String,
    pub description: String,
    pub runtime: String,
    pub role: String,
    pub handler: String,
    pub memory_size: i64,
    pub timeout: i64,
    pub environment: Option<String>,
    pub vpc_config: Option<String>,
    pub code_sha256: String,
    pub code_size: i64,
}

macro_rules! columns {
    () => {
        "account_id, function_name, version, description, runtime, role, handler, memory_size, timeout, \
         environment, vpc_config, code_sha256, code_size, revision_id, last_modified"
    };
}
const LATEST: &str = "$LATEST";

fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn storage_exceeded() -> ApiError {
    ApiError::CodeStorageExceeded("Code storage limit exceeded.".into())
}

/// Runs `$body` inside a transaction on either engine; `$tx` names the transaction.
macro_rules! in_tx {
    ($store:expr, $tx:ident => $body:block) => {
        on_pool!($store, pool => {
            let mut $tx = pool.begin().await.context("begin transaction")?;
            let out = $body;
            $tx.commit().await.context("commit transaction")?;
            out
        })
    };
}

impl Metadata {
    /// Total CodeSize over every stored version of the account, and its number of functions.
    pub async fn usage(&self, account_id: &str) -> ApiResult<(i64, i64)> {
        let sql = "select cast(coalesce(sum(code_size), 0) as bigint), count(distinct function_name) from function_versions where account_id = $1";
        let (size, count): (i64, i64) =
            on_pool!(&self.store, pool => sqlx::query_as(sql).bind(account_id).fetch_one(pool).await)
                .context("sum code size")?;
        Ok((size, count))
    }

    async fn ensure_storage(&self, account_id: &str, extra: i64) -> ApiResult<()> {
        let limit = self.account(account_id).await?.code_storage_bytes;
        let (used, _) = self.usage(account_id).await?;
        if used + extra > limit { Err(storage_exceeded()) } else { Ok(()) }
    }

    /// Creates `$LATEST` (and version 1 when `publish`); returns the row to report.
    pub async fn create_function(&self, account_id: &str, new: NewFunction, publish: bool) -> ApiResult<FunctionRow> {
        let _invalidates = self.cache.writing();
        let extra = if publish { new.code_size * 2 } else { new.code_size };
        self.ensure_storage(account_id, extra).await?;
        let now = now_ms();
        let row = FunctionRow {
            account_id: account_id.to_owned(),
            function_name: new.function_name,
            version: LATEST.to_owned(),
            description: new.description,
            runtime: new.runtime,
            role: new.role,
            handler: new.handler,
            memory_size: new.memory_size,
            timeout: new.timeout,
            environment: new.environment,
            vpc_config: new.vpc_config,
            code_sha256: new.code_sha256,
            code_size: new.code_size,
            revision_id: new_revision(),
            last_modified: now,
        };
        let insert = concat!(
            "insert into function_versions (",
            columns!(),
            ", created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $15) on conflict do nothing"
        );
        in_tx!(&self.store, tx => {
            let n = bind_row(sqlx::query(insert), &row).execute(&mut *tx).await.context("insert function")?.rows_affected();
            if n == 0 {
                return Err(ApiError::ResourceConflict(format!("Function already exist: {}", row.function_name)));
            }
            if publish {
                let number: i64 = sqlx::query_scalar(
                    "insert into version_counters (account_id, function_name, last_version, created_at, updated_at) \
                     values ($1, $2, 1, $3, $3) on conflict (account_id, function_name) \
                     do update set last_version = version_counters.last_version + 1, updated_at = $3 returning last_version",
                )
                .bind(account_id).bind(&row.function_name).bind(now)
                .fetch_one(&mut *tx).await.context("bump version counter")?;
                let mut published = row.clone();
                published.version = number.to_string();
                bind_row(sqlx::query(insert), &published).execute(&mut *tx).await.context("insert version")?;
                Ok(published)
            } else {
                Ok(row)
            }
        })
    }

    /// One version of a function (`$LATEST` or a number).
    pub async fn get_version(&self, account_id: &str, name: &str, version: &str) -> ApiResult<Option<FunctionRow>> {
        let sql = concat!(
            "select ",
            columns!(),
            " from function_versions where account_id = $1 and function_name = $2 and version = $3"
        );
        Ok(on_pool!(&self.store, pool => sqlx::query_as::<_, FunctionRow>(sql)
            .bind(account_id).bind(name).bind(version).fetch_optional(pool).await)
        .context("load function version")?)
    }

    /// `$LATEST` of each function, by name, after `after`, at most `limit`.
    pub async fn list_latest(&self, account_id: &str, after: Option<&str>, limit: i64) -> ApiResult<Vec<FunctionRow>> {
        let sql = concat!(
            "select ",
            columns!(),
            " from function_versions where account_id = $1 and version = '$LATEST' \
             and function_name > $2 order by function_name limit $3"
        );
        Ok(on_pool!(&self.store, pool => sqlx::query_as::<_, FunctionRow>(sql)
            .bind(account_id).bind(after.unwrap_or("")).bind(limit).fetch_all(pool).await)
        .context("list functions")?)
    }

    /// Applies `change` to `$LATEST` and stores it under a new revision, guarded by the old one.
    pub async fn update_latest<F>(&self, account_id: &str, name: &str, change: F) -> ApiResult<FunctionRow>
    where
        F: FnOnce(&mut FunctionRow) -> ApiResult<()>,
    {
        let _invalidates = self.cache.writing();
        let current = self
            .get_version(account_id, name, LATEST)
            .await?
            .ok_or_else(|| ApiError::ResourceNotFound(format!("Function not found: {name}")))?;
        let mut next = current.clone();
        change(&mut next)?;
        if next.code_size > current.code_size {
            self.ensure_storage(account_id, next.code_size - current.code_size).await?;
        }
        next.revision_id = new_revision();
        next.last_modified = now_ms();
        let sql = "update function_versions set description = $4, runtime = $5, role = $6, handler = $7, memory_size = $8, \
                   timeout = $9, environment = $10, vpc_config = $11, code_sha256 = $12, code_size = $13, revision_id = $14, \
                   last_modified = $15, updated_at = $15 \
                   where account_id = $1 and function_name = $2 and version = $3 and revision_id = $16";
        let n = on_pool!(&self.store, pool => bind_row(sqlx::query(sql), &next)
            .bind(&current.revision_id).execute(pool).await.map(|r| r.rows_affected()))
        .context("update function")?;
        if n == 0 {
            return Err(ApiError::ResourceConflict(
                "The operation cannot be performed at this time. The function was modified concurrently.".into(),
            ));
        }
        Ok(next)
    }

    /// Deletes a function with all its versions; returns the code digests it referenced.
    pub async fn delete_function(&self, account_id: &str, name: &str) -> ApiResult<Vec<String>> {
        let _invalidates = self.cache.writing();
        let shas: Vec<String> = in_tx!(&self.store, tx => {
            let shas: Vec<String> = sqlx::query_scalar(
                "delete from function_versions where account_id = $1 and function_name = $2 returning code_sha256",
            )
            .bind(account_id).bind(name).fetch_all(&mut *tx).await.context("delete function")?;
            for table in ["delete from aliases where account_id = $1 and function_name = $2",
                          "delete from policies where account_id = $1 and function_name = $2",
                          "delete from function_concurrency where account_id = $1 and function_name = $2"] {
                sqlx::query(table).bind(account_id).bind(name).execute(&mut *tx).await.context("delete function children")?;
            }
            Ok::<_, ApiError>(shas)
        })?;
        if shas.is_empty() {
            return Err(ApiError::ResourceNotFound(format!("Function not found: {name}")));
        }
        Ok(shas)
    }

    /// Deletes one published version (and its policy) unless an alias points to it; returns its code digest.
    pub async fn delete_version(&self, account_id: &str, name: &str, version: &str) -> ApiResult<Vec<String>> {
        let _invalidates = self.cache.writing();
        let aliases = self.list_aliases(account_id, name).await?;
        if let Some(alias) = aliases.iter().find(|a| {
            a.function_version == version
                || a.routing_config.as_deref().is_some_and(|r| r.contains(&format!("\"{version}\"")))
        }) {
            return Err(ApiError::ResourceConflict(format!(
                "Unable to delete version because the following aliases reference it: [{}]",
                alias.alias_name
            )));
        }
        let drop_policy = "delete from policies where account_id = $1 and function_name = $2 and qualifier = $3";
        on_pool!(&self.store, pool => sqlx::query(drop_policy).bind(account_id).bind(name).bind(version).execute(pool).await.map(|_| ()))
            .context("delete version policy")?;
        let sql = "delete from function_versions where account_id = $1 and function_name = $2 and version = $3 \
                   and version <> '$LATEST' returning code_sha256";
        Ok(on_pool!(&self.store, pool => sqlx::query_scalar::<_, String>(sql)
            .bind(account_id).bind(name).bind(version).fetch_all(pool).await)
        .context("delete version")?)
    }

    /// Whether any version of any function still refers to this code digest.
    pub async fn code_referenced(&self, code_sha256: &str) -> ApiResult<bool> {
        let sql = "select count(*) from function_versions where code_sha256 = $1";
        let n: i64 = on_pool!(&self.store, pool => sqlx::query_scalar(sql).bind(code_sha256).fetch_one(pool).await)
            .context("count code references")?;
        Ok(n > 0)
    }
}

fn bind_row<'q, DB>(
    q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    r: &'q FunctionRow,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    q.bind(r.account_id.as_str())
        .bind(r.function_name.as_str())
        .bind(r.version.as_str())
        .bind(r.description.as_str())
        .bind(r.runtime.as_str())
        .bind(r.role.as_str())
        .bind(r.handler.as_str())
        .bind(r.memory_size)
        .bind(r.timeout)
        .bind(r.environment.as_deref())
        .bind(r.vpc_config.as_deref())
        .bind(r.code_sha256.as_str())
        .bind(r.code_size)
        .bind(r.revision_id.as_str())
        .bind(r.last_modified)
}
