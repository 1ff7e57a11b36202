//! Aliases: named, mutable pointers to one version (plus an optional weighted second one).

use anyhow::Context as _;
use lamina_common::{ApiError, ApiResult, time::now_ms};

use crate::{Metadata, on_pool};

/// One alias as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AliasRow {
    pub account_id: String,
    pub function_name: String,
    pub alias_name: String,
    pub function_version: String,
    pub description: String,
    /// JSON `{"AdditionalVersionWeights": {"<version>": <weight>}}`, if any.
    pub routing_config: Option<String>,
    pub revision_id: String,
}

impl Metadata {
    /// Every alias of a function, by name.
    pub async fn list_aliases(&self, account_id: &str, name: &str) -> ApiResult<Vec<AliasRow>> {
        let sql = concat!(
            "select account_id, function_name, alias_name, function_version, description, routing_config, revision_id ",
            "from aliases where account_id = $1 and function_name = $2 order by alias_name"
        );
        Ok(on_pool!(&self.store, pool => sqlx::query_as::<_, AliasRow>(sql).bind(account_id).bind(name).fetch_all(pool).await)
            .context("list aliases")?)
    }

    /// One alias (cached: see `read_cache`).
    pub async fn get_alias(&self, account_id: &str, name: &str, alias: &str) -> ApiResult<Option<AliasRow>> {
        let sql = concat!(
            "select account_id, function_name, alias_name, function_version, description, routing_config, revision_id ",
            "from aliases where account_id = $1 and function_name = $2 and alias_name = $3"
        );
        let load = async {
            on_pool!(&self.store, pool => sqlx::query_as::<_, AliasRow>(sql)
                .bind(account_id).bind(name).bind(alias).fetch_optional(pool).await)
        };
        Ok(self.cache.alias((account_id, name, alias), load).await.context("load alias")?)
    }

    /// Creates an alias; the caller has checked that its versions exist.
    pub async fn create_alias(&self, mut row: AliasRow) -> ApiResult<AliasRow> {
        let _invalidates = self.cache.writing();
        row.revision_id = uuid::Uuid::new_v4().to_string();
        let sql = "insert into aliases (account_id, function_name, alias_name, function_version, description, routing_config, \
                   revision_id, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $8) on conflict do nothing";
        let n = on_pool!(&self.store, pool => sqlx::query(sql)
            .bind(&row.account_id).bind(&row.function_name).bind(&row.alias_name).bind(&row.function_version)
            .bind(&row.description).bind(&row.routing_config).bind(&row.revision_id).bind(now_ms())
            .execute(pool).await.map(|r| r.rows_affected()))
        .context("insert alias")?;
        if n == 0 {
            return Err(ApiError::ResourceConflict(format!(
                "Alias already exists: arn:aws:lambda:::function:{}:{}",
                row.function_name, row.alias_name
            )));
        }
        Ok(row)
    }

    /// Stores a changed alias, guarded by its previous revision.
    pub async fn update_alias(&self, previous_revision: &str, mut row: AliasRow) -> ApiResult<AliasRow> {
        let _invalidates = self.cache.writing();
        row.revision_id = uuid::Uuid::new_v4().to_string();
        let sql = "update aliases set function_version = $4, description = $5, routing_config = $6, revision_id = $7, updated_at = $8 \
                   where account_id = $1 and function_name = $2 and alias_name = $3 and revision_id = $9";
        let n = on_pool!(&self.store, pool => sqlx::query(sql)
            .bind(&row.account_id).bind(&row.function_name).bind(&row.alias_name).bind(&row.function_version)
            .bind(&row.description).bind(&row.routing_config).bind(&row.revision_id).bind(now_ms()).bind(previous_revision)
            .execute(pool).await.map(|r| r.rows_affected()))
        .context("update alias")?;
        if n == 0 {
            return Err(ApiError::PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to \
                 retrieve the latest Revision Id"
                    .into(),
            ));
        }
        Ok(row)
    }

    /// Deletes an alias (and its policy); false when it did not exist.
    pub async fn delete_alias(&self, account_id: &str, name: &str, alias: &str) -> ApiResult<bool> {
        let _invalidates = self.cache.writing();
        let n = on_pool!(&self.store, pool => {
            let mut tx = pool.begin().await.context("begin delete alias")?;
            let n = sqlx::query("delete from aliases where account_id = $1 and function_name = $2 and alias_name = $3")
                .bind(account_id).bind(name).bind(alias).execute(&mut *tx).await.context("delete alias")?.rows_affected();
            sqlx::query("delete from policies where account_id = $1 and function_name = $2 and qualifier = $3")
                .bind(account_id).bind(name).bind(alias).execute(&mut *tx).await.context("delete alias policy")?;
            tx.commit().await.context("commit delete alias")?;
            n
        });
        Ok(n > 0)
    }
}

/// What a qualifier names: the version row, and the alias when it was one.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub row: crate::FunctionRow,
    pub alias: Option<AliasRow>,
}

impl Metadata {
    /// Resolves no qualifier / `$LATEST` / a number / an alias name to a stored version.
    pub async fn resolve_version(
        &self,
        account_id: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> ApiResult<Option<Resolved>> {
        let q = qualifier.unwrap_or("$LATEST");
        if q == "$LATEST" || q.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(self.get_version(account_id, name, q).await?.map(|row| Resolved { row, alias: None }));
        }
        let Some(alias) = self.get_alias(account_id, name, q).await? else { return Ok(None) };
        let row = self.get_version(account_id, name, &alias.function_version).await?;
        Ok(row.map(|row| Resolved { row, alias: Some(alias) }))
    }
}
