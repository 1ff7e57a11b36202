//! Reserved concurrency per function (PutFunctionConcurrency and friends).

use anyhow::Context as _;
use lamina_common::{ApiResult, time::now_ms};

use crate::{Metadata, on_pool};

impl Metadata {
    /// The function's reservation, if any.
    pub async fn reserved_concurrency(&self, account_id: &str, name: &str) -> ApiResult<Option<i64>> {
        let sql = "select reserved from function_concurrency where account_id = $1 and function_name = $2";
        Ok(on_pool!(&self.store, pool => sqlx::query_scalar::<_, i64>(sql).bind(account_id).bind(name).fetch_optional(pool).await)
            .context("load reserved concurrency")?)
    }

    /// Sum of the reservations of the account's functions other than `except`.
    pub async fn reserved_total(&self, account_id: &str, except: Option<&str>) -> ApiResult<i64> {
        let sql = "select cast(coalesce(sum(reserved), 0) as bigint) from function_concurrency \
                   where account_id = $1 and function_name <> $2";
        Ok(on_pool!(&self.store, pool => sqlx::query_scalar::<_, i64>(sql)
            .bind(account_id).bind(except.unwrap_or("")).fetch_one(pool).await)
        .context("sum reserved concurrency")?)
    }

    /// Sets a reservation.
    pub async fn put_reserved_concurrency(&self, account_id: &str, name: &str, reserved: i64) -> ApiResult<()> {
        let _invalidates = self.cache.writing();
        let sql = "insert into function_concurrency (account_id, function_name, reserved, created_at, updated_at) \
                   values ($1, $2, $3, $4, $4) on conflict (account_id, function_name) \
                   do update set reserved = $3, updated_at = $4";
        on_pool!(&self.store, pool => sqlx::query(sql).bind(account_id).bind(name).bind(reserved).bind(now_ms())
            .execute(pool).await.map(|_| ()))
        .context("store reserved concurrency")?;
        Ok(())
    }

    /// Removes a reservation.
    pub async fn delete_reserved_concurrency(&self, account_id: &str, name: &str) -> ApiResult<()> {
        let _invalidates = self.cache.writing();
        let sql = "delete from function_concurrency where account_id = $1 and function_name = $2";
        on_pool!(&self.store, pool => sqlx::query(sql).bind(account_id).bind(name).execute(pool).await.map(|_| ()))
            .context("delete reserved concurrency")?;
        Ok(())
    }
}

/// What Invoke needs about one version, read in a single query: the row and the limits that apply.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvokeTarget {
    #[sqlx(flatten)]
    pub row: crate::FunctionRow,
    /// The account's concurrent-executions limit.
    pub account_limit: i64,
    /// The function's reservation, if any.
    pub reserved: Option<i64>,
    /// Sum of every reservation of the account.
    pub reserved_total: i64,
    /// The account's share of an execution host (percent), when the operator set one.
    pub host_share_percent: Option<i64>,
}

impl Metadata {
    /// One version (`$LATEST` or a number) with the account's concurrency limits (cached: see `read_cache`).
    pub async fn invoke_target(&self, account_id: &str, name: &str, version: &str) -> ApiResult<Option<InvokeTarget>> {
        let sql = "select fv.account_id, fv.function_name, fv.version, fv.description, fv.runtime, fv.role, fv.handler, \
                   fv.memory_size, fv.timeout, fv.environment, fv.vpc_config, fv.code_sha256, fv.code_size, fv.revision_id, \
                   fv.last_modified, fv.ephemeral_storage, fv.dead_letter_arn, a.concurrent_executions as account_limit, fc.reserved as reserved, \
                   cast((select coalesce(sum(r.reserved), 0) from function_concurrency r where r.account_id = $1) as bigint) \
                   as reserved_total, a.host_share_percent \
                   from function_versions fv \
                   join accounts a on a.account_id = fv.account_id \
                   left join function_concurrency fc on fc.account_id = fv.account_id and fc.function_name = fv.function_name \
                   where fv.account_id = $1 and fv.function_name = $2 and fv.version = $3";
        let load = async {
            on_pool!(&self.store, pool => sqlx::query_as::<_, InvokeTarget>(sql)
                .bind(account_id).bind(name).bind(version).fetch_optional(pool).await)
        };
        let target = self.cache.target((account_id, name, version), load).await.context("load invoke target")?;
        target.map(|t| Ok(InvokeTarget { row: self.open_row(t.row)?, ..t })).transpose()
    }
}
