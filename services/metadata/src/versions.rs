//! Publishing and listing immutable versions.

use anyhow::Context as _;
use lamina_common::{ApiError, ApiResult, time::now_ms};

use crate::functions::{FunctionRow, ensure_storage, not_found, revision_mismatch};
use crate::store::{in_tx, locked};
use crate::{Metadata, on_pool};

macro_rules! columns {
    () => {
        "account_id, function_name, version, description, runtime, role, handler, memory_size, timeout, \
         environment, vpc_config, code_sha256, code_size, revision_id, last_modified, ephemeral_storage, \
         dead_letter_arn"
    };
}

/// True when two rows would run the same thing (code and configuration).
fn same_executable(a: &FunctionRow, b: &FunctionRow) -> bool {
    a.code_sha256 == b.code_sha256
        && a.runtime == b.runtime
        && a.role == b.role
        && a.handler == b.handler
        && a.memory_size == b.memory_size
        && a.timeout == b.timeout
        && a.environment == b.environment
        && a.vpc_config == b.vpc_config
        && a.ephemeral_storage == b.ephemeral_storage
        && a.dead_letter_arn == b.dead_letter_arn
}

impl Metadata {
    /// Every version of a function: `$LATEST` first, then ascending numbers.
    pub async fn list_versions(&self, account_id: &str, name: &str) -> ApiResult<Vec<FunctionRow>> {
        let sql =
            concat!("select ", columns!(), " from function_versions where account_id = $1 and function_name = $2");
        let rows = on_pool!(&self.store, pool => sqlx::query_as::<_, FunctionRow>(sql)
            .bind(account_id).bind(name).fetch_all(pool).await)
        .context("list versions")?;
        let mut rows = rows.into_iter().map(|r| self.open_row(r)).collect::<ApiResult<Vec<_>>>()?;
        rows.sort_by_key(|r| r.version.parse::<i64>().unwrap_or(0));
        Ok(rows)
    }

    /// Snapshots `$LATEST` as a new version, or returns the newest version when nothing changed; one
    /// transaction checks the expected digest and revision and the account's code storage quota.
    pub async fn publish_version(
        &self,
        account_id: &str,
        name: &str,
        expected_sha256_hex: Option<&str>,
        description: Option<&str>,
        expected_revision: Option<&str>,
    ) -> ApiResult<FunctionRow> {
        let _invalidates = self.cache.writing();
        let select_latest = concat!(
            "select ",
            columns!(),
            " from function_versions where account_id = $1 and function_name = $2 and version = '$LATEST'"
        );
        let select_published = concat!(
            "select ",
            columns!(),
            " from function_versions where account_id = $1 and function_name = $2 and version <> '$LATEST'"
        );
        let insert = concat!(
            "insert into function_versions (",
            columns!(),
            ", created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $15, $15)"
        );
        let bump = "insert into version_counters (account_id, function_name, last_version, created_at, updated_at) \
                    values ($1, $2, 1, $3, $3) on conflict (account_id, function_name) \
                    do update set last_version = version_counters.last_version + 1, updated_at = $3 returning last_version";
        let row = in_tx!(&self.store, tx, locks => {
            let latest: Option<FunctionRow> = sqlx::query_as(locked(select_latest, locks.update))
                .bind(account_id).bind(name).fetch_optional(&mut *tx).await.context("lock function")?;
            let latest = self.open_row(latest.ok_or_else(|| not_found(account_id, name, None))?)?;
            if let Some(expected) = expected_sha256_hex
                && expected != latest.code_sha256
            {
                return Err(ApiError::InvalidParameterValue(format!(
                    "CodeSHA256 ({}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the \
                     CodeSHA256 in $LATEST.",
                    lamina_code_b64(expected),
                    lamina_code_b64(&latest.code_sha256)
                )));
            }
            if expected_revision.is_some_and(|rev| rev != latest.revision_id) {
                return Err(revision_mismatch());
            }
            let published: Vec<FunctionRow> = sqlx::query_as(select_published)
                .bind(account_id).bind(name).fetch_all(&mut *tx).await.context("list versions")?;
            let newest = published.into_iter().max_by_key(|r| r.version.parse::<i64>().unwrap_or(0));
            // Compared in plaintext: each seal of the same variables differs.
            let newest = newest.map(|r| self.open_row(r)).transpose()?;
            match newest {
                Some(newest) if same_executable(&newest, &latest) => newest,
                _ => {
                    ensure_storage!(tx, locks, account_id, latest.code_size);
                    let now = now_ms();
                    let number: i64 = sqlx::query_scalar(bump).bind(account_id).bind(name).bind(now)
                        .fetch_one(&mut *tx).await.context("bump version counter")?;
                    let mut row = latest;
                    row.version = number.to_string();
                    if let Some(d) = description {
                        row.description = d.to_owned();
                    }
                    row.last_modified = now;
                    let environment = self.seal_env(row.environment.as_deref())?;
                    sqlx::query(insert)
                        .bind(&row.account_id).bind(&row.function_name).bind(&row.version).bind(&row.description)
                        .bind(&row.runtime).bind(&row.role).bind(&row.handler).bind(row.memory_size).bind(row.timeout)
                        .bind(&environment).bind(&row.vpc_config).bind(&row.code_sha256).bind(row.code_size)
                        .bind(&row.revision_id).bind(row.last_modified).bind(row.ephemeral_storage)
                        .bind(&row.dead_letter_arn)
                        .execute(&mut *tx).await.context("insert version")?;
                    row
                }
            }
        });
        Ok(row)
    }
}

fn lamina_code_b64(hex_digest: &str) -> String {
    use base64::Engine as _;
    hex::decode(hex_digest)
        .map(|raw| base64::engine::general_purpose::STANDARD.encode(raw))
        .unwrap_or_else(|_| hex_digest.to_owned())
}
