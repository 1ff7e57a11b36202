//! Environment variables at rest: sealed with the master key (as AWS encrypts them with KMS), so a
//! copy of the database does not hold tenants' secrets. Rows in memory and on the wire hold the
//! plaintext; only what is bound to or read from `function_versions.environment` is sealed.

use anyhow::Context as _;
use lamina_common::ApiResult;

use crate::functions::FunctionRow;
use crate::{Metadata, on_pool};

/// Marks a sealed value; anything else in the column is a plaintext JSON object written before
/// sealing existed (it always starts with `{`), read as is until [`Metadata::seal_plaintext_environments`]
/// rewrites it.
const SEALED: &str = "sealed:v1:";

impl Metadata {
    /// The column value for `environment`.
    pub(crate) fn seal_env(&self, environment: Option<&str>) -> ApiResult<Option<String>> {
        match environment {
            None => Ok(None),
            Some(plain) => Ok(Some(format!("{SEALED}{}", self.cipher.seal(plain).context("seal environment")?))),
        }
    }

    /// The plaintext of an `environment` column value (sealed, or plaintext from before sealing).
    pub(crate) fn open_env(&self, stored: Option<String>) -> ApiResult<Option<String>> {
        match stored {
            Some(s) => match s.strip_prefix(SEALED) {
                Some(sealed) => Ok(Some(self.cipher.open(sealed).context("open environment")?)),
                None => Ok(Some(s)),
            },
            None => Ok(None),
        }
    }

    /// A row as read from the table, with its variables in plaintext.
    pub(crate) fn open_row(&self, mut row: FunctionRow) -> ApiResult<FunctionRow> {
        row.environment = self.open_env(row.environment.take())?;
        Ok(row)
    }

    /// A row to write to the table, with its variables sealed.
    pub(crate) fn sealed_row(&self, row: &FunctionRow) -> ApiResult<FunctionRow> {
        let mut stored = row.clone();
        stored.environment = self.seal_env(row.environment.as_deref())?;
        Ok(stored)
    }

    /// Seals every variable set still stored in plaintext (written before sealing existed); runs at
    /// start. Each row is rewritten only if it still holds the plaintext read, so replicas running
    /// this at once, or a concurrent update, lose nothing. Returns how many rows it sealed.
    pub async fn seal_plaintext_environments(&self) -> ApiResult<u64> {
        #[derive(sqlx::FromRow)]
        struct Plain {
            account_id: String,
            function_name: String,
            version: String,
            environment: String,
        }
        let select = "select account_id, function_name, version, environment from function_versions \
                      where environment is not null and environment not like 'sealed:%'";
        let update = "update function_versions set environment = $1 \
                      where account_id = $2 and function_name = $3 and version = $4 and environment = $5";
        let rows: Vec<Plain> = on_pool!(&self.store, pool => sqlx::query_as(select).fetch_all(pool).await)
            .context("find plaintext environments")?;
        let mut sealed = 0;
        for r in rows {
            let value = self.seal_env(Some(&r.environment))?;
            let n = on_pool!(&self.store, pool => sqlx::query(update)
                .bind(value.as_deref()).bind(&r.account_id).bind(&r.function_name).bind(&r.version)
                .bind(&r.environment).execute(pool).await.map(|done| done.rows_affected()))
            .context("seal environment")?;
            sealed += n;
        }
        if sealed > 0 {
            // Cached invoke targets hold what was read before; they are plaintext either way, but
            // their revision is what later writes compare against.
            self.invalidate_cache();
            tracing::info!(rows = sealed, "sealed environment variables stored in plaintext");
        }
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use crate::SecretCipher;

    #[tokio::test]
    async fn sealed_values_round_trip_and_plaintext_reads_as_is() {
        let path = std::env::temp_dir().join(format!("lamina-sealed-env-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}", path.display());
        let m =
            crate::Metadata::connect(&url, SecretCipher::new(&SecretCipher::generate_key())).await.expect("connect");
        let sealed = m.seal_env(Some(r#"{"SECRET":"hunter2"}"#)).expect("seal").expect("some");
        assert!(sealed.starts_with(super::SEALED) && !sealed.contains("hunter2"), "{sealed}");
        assert_eq!(m.open_env(Some(sealed)).expect("open").as_deref(), Some(r#"{"SECRET":"hunter2"}"#));
        assert_eq!(m.open_env(Some(r#"{"A":"1"}"#.into())).expect("legacy").as_deref(), Some(r#"{"A":"1"}"#));
        assert_eq!(m.open_env(None).expect("none"), None);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
