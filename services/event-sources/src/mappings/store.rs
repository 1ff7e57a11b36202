//! The mappings' SQL, written once for SQLite and Postgres. Every API query filters by account;
//! the poller-facing ones (leases, checkpoints, settling) are keyed by the mapping's UUID.

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lamina_common::names::{function_arn, qualified_arn};
use lamina_common::{ApiError, ApiResult};
use lamina_metadata::on_pool;
use lamina_metadata::store::Store;

use super::validate::{self, SourceKind};
use super::{EventSourceMapping, ListQuery, MappingPage, MappingRecord, MappingUpdate, NewMapping};
use crate::EventSources;

/// An update's new column values.
struct Change {
    function_name: String,
    qualifier: String,
    state: &'static str,
    enabled: bool,
    reason: String,
    document: String,
    last_modified: i64,
    arn: String,
    queue: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    uuid: String,
    account_id: String,
    function_name: String,
    qualifier: String,
    event_source_arn: String,
    state: String,
    enabled: bool,
    state_transition_reason: String,
    last_processing_result: String,
    document: String,
    last_modified: i64,
    created_at: i64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn not_found() -> ApiError {
    ApiError::ResourceNotFound("The resource you requested does not exist.".into())
}

fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> ApiError {
    move |e| ApiError::Internal(anyhow::Error::new(e).context(context))
}

/// Whether `err` is the pair index refusing a second mapping of the same function and source.
fn is_duplicate(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
}

fn source_queue(mapping: &EventSourceMapping) -> String {
    mapping.queues.as_ref().and_then(|q| q.first()).cloned().unwrap_or_default()
}

/// AWS's conflict message, which words SQS differently from the streams.
fn conflict(kind: Option<SourceKind>, arn: &str, function_name: &str, uuid: &str) -> ApiError {
    let message = match kind {
        Some(SourceKind::Sqs) => format!(
            "An event source mapping with SQS arn (\" {arn} \") and function (\" {function_name} \") already exists. \
             Please update or delete the existing mapping with UUID {uuid}"
        ),
        _ => format!(
            "The event source arn (\" {arn} \") and function (\" {function_name} \") provided mapping already exists. \
             Please update or delete the existing mapping with UUID {uuid}"
        ),
    };
    ApiError::ResourceConflict(message)
}

fn encode_marker(row: &Row) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", row.created_at, row.uuid))
}

fn decode_marker(marker: &str) -> ApiResult<(i64, String)> {
    let invalid = || ApiError::InvalidParameterValue(format!("Invalid marker: {marker}"));
    let raw = URL_SAFE_NO_PAD.decode(marker).map_err(|_| invalid())?;
    let text = String::from_utf8(raw).map_err(|_| invalid())?;
    let (created, uuid) = text.split_once(':').ok_or_else(invalid)?;
    Ok((created.parse().map_err(|_| invalid())?, uuid.to_owned()))
}

impl EventSources {
    fn mapping_of(&self, row: Row) -> ApiResult<EventSourceMapping> {
        let mut m: EventSourceMapping =
            serde_json::from_str(&row.document).with_context(|| format!("decode event source mapping {}", row.uuid))?;
        m.function_arn = if row.qualifier.is_empty() {
            function_arn(&self.region, &row.account_id, &row.function_name)
        } else {
            qualified_arn(&self.region, &row.account_id, &row.function_name, &row.qualifier)
        };
        m.event_source_mapping_arn =
            Some(format!("arn:aws:lambda:{}:{}:event-source-mapping:{}", self.region, row.account_id, row.uuid));
        m.event_source_arn = Some(row.event_source_arn);
        m.state = row.state;
        m.state_transition_reason = row.state_transition_reason;
        m.last_processing_result = row.last_processing_result;
        m.last_modified = row.last_modified as f64 / 1000.0;
        m.uuid = row.uuid;
        Ok(m)
    }

    async fn row(&self, account_id: &str, uuid: &str) -> ApiResult<Option<Row>> {
        const SQL: &str = "select uuid, account_id, function_name, qualifier, event_source_arn, state, enabled, \
             state_transition_reason, last_processing_result, document, last_modified, created_at \
             from event_source_mappings where uuid = $1 and account_id = $2";
        on_pool!(&self.store, pool => sqlx::query_as::<_, Row>(SQL).bind(uuid).bind(account_id).fetch_optional(pool).await)
            .map_err(db("load event source mapping"))
    }

    /// The mapping of the same function and source that makes a new one a duplicate.
    async fn pair_owner(
        &self,
        account_id: &str,
        name: &str,
        qualifier: &str,
        arn: &str,
        queue: &str,
    ) -> ApiResult<String> {
        const SQL: &str = "select uuid from event_source_mappings where account_id = $1 and function_name = $2 \
             and qualifier = $3 and event_source_arn = $4 and source_queue = $5 and state <> 'Deleting'";
        let found = on_pool!(&self.store, pool => sqlx::query_scalar::<_, String>(SQL)
            .bind(account_id).bind(name).bind(qualifier).bind(arn).bind(queue)
            .fetch_optional(pool).await)
        .map_err(db("find the conflicting event source mapping"))?;
        Ok(found.unwrap_or_default())
    }

    pub(crate) async fn create_mapping(&self, new: NewMapping) -> ApiResult<EventSourceMapping> {
        let arn = new.mapping.event_source_arn.clone().unwrap_or_default();
        let uuid = lamina_common::ids::random_uuid().to_string();
        let qualifier = new.qualifier.clone().unwrap_or_default();
        let queue = source_queue(&new.mapping);
        let now = now_ms();
        let mut mapping = new.mapping;
        mapping.uuid = uuid.clone();
        mapping.state = "Creating".into();
        let document = serde_json::to_string(&mapping).context("encode event source mapping")?;
        const SQL: &str = "insert into event_source_mappings (uuid, account_id, function_name, qualifier, \
             event_source_arn, source_queue, state, enabled, state_transition_reason, last_processing_result, \
             document, last_modified, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, 'Creating', $7, $8, $9, $10, $11, $11, $11) \
             returning uuid, account_id, function_name, qualifier, event_source_arn, state, enabled, \
             state_transition_reason, last_processing_result, document, last_modified, created_at";
        // `returning`: the poller manager may settle (or, after a delete, remove) the row at once.
        let inserted = on_pool!(&self.store, pool => sqlx::query_as::<_, Row>(SQL)
            .bind(&uuid).bind(&new.account_id).bind(&new.function_name).bind(&qualifier).bind(&arn).bind(&queue)
            .bind(new.enabled).bind(&mapping.state_transition_reason).bind(&mapping.last_processing_result)
            .bind(&document).bind(now)
            .fetch_one(pool).await);
        match inserted {
            Ok(row) => self.mapping_of(row),
            Err(e) if is_duplicate(&e) => {
                let other = self.pair_owner(&new.account_id, &new.function_name, &qualifier, &arn, &queue).await?;
                Err(conflict(SourceKind::of(&arn), &arn, &new.function_name, &other))
            }
            Err(e) => Err(db("insert event source mapping")(e)),
        }
    }

    pub(crate) async fn get_mapping(&self, account_id: &str, uuid: &str) -> ApiResult<EventSourceMapping> {
        let row = self.row(account_id, uuid).await?.ok_or_else(not_found)?;
        self.mapping_of(row)
    }

    pub(crate) async fn list_mappings(&self, q: ListQuery) -> ApiResult<MappingPage> {
        let (after_created, after_uuid) = match &q.marker {
            Some(m) => decode_marker(m)?,
            None => (i64::MIN, String::new()),
        };
        let limit = q.max_items.clamp(1, super::MAX_PAGE);
        // Optional filters as `($n is null or column = $n)`: one statement for every combination.
        const SQL: &str = "select uuid, account_id, function_name, qualifier, event_source_arn, state, enabled, \
             state_transition_reason, last_processing_result, document, last_modified, created_at \
             from event_source_mappings where account_id = $1 \
             and ($2 is null or function_name = $2) and ($3 is null or qualifier = $3) \
             and ($4 is null or event_source_arn = $4) \
             and (created_at > $5 or (created_at = $5 and uuid > $6)) \
             order by created_at, uuid limit $7";
        let qualifier = q.function_name.as_ref().and(q.qualifier.clone());
        let mut rows = on_pool!(&self.store, pool => sqlx::query_as::<_, Row>(SQL)
            .bind(&q.account_id).bind(&q.function_name).bind(&qualifier).bind(&q.event_source_arn)
            .bind(after_created).bind(&after_uuid).bind(limit as i64 + 1)
            .fetch_all(pool).await)
        .map_err(db("list event source mappings"))?;
        let next_marker = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(encode_marker)
        } else {
            None
        };
        let mappings = rows.into_iter().map(|r| self.mapping_of(r)).collect::<ApiResult<Vec<_>>>()?;
        Ok(MappingPage { mappings, next_marker })
    }

    pub(crate) async fn update_mapping(&self, u: MappingUpdate) -> ApiResult<EventSourceMapping> {
        const LOAD: &str = "select uuid, account_id, function_name, qualifier, event_source_arn, state, enabled, \
             state_transition_reason, last_processing_result, document, last_modified, created_at \
             from event_source_mappings where uuid = $1 and account_id = $2";
        const LOAD_FOR_UPDATE: &str = "select uuid, account_id, function_name, qualifier, event_source_arn, state, \
             enabled, state_transition_reason, last_processing_result, document, last_modified, created_at \
             from event_source_mappings where uuid = $1 and account_id = $2 for update";
        const SAVE: &str = "update event_source_mappings set function_name = $3, qualifier = $4, state = $5, \
             enabled = $6, state_transition_reason = $7, document = $8, last_modified = $9, updated_at = $10 \
             where uuid = $1 and account_id = $2";
        // One read-modify-write transaction per engine: SQLite takes its write lock up front
        // (`begin immediate`), Postgres locks the row.
        macro_rules! transaction {
            ($tx:ident, $load:expr) => {{
                let Some(row) = sqlx::query_as::<_, Row>($load)
                    .bind(&u.uuid)
                    .bind(&u.account_id)
                    .fetch_optional(&mut *$tx)
                    .await
                    .map_err(db("load event source mapping"))?
                else {
                    return Err(not_found());
                };
                let change = self.change(&u, row)?;
                let saved = sqlx::query(SAVE)
                    .bind(&u.uuid)
                    .bind(&u.account_id)
                    .bind(&change.function_name)
                    .bind(&change.qualifier)
                    .bind(change.state)
                    .bind(change.enabled)
                    .bind(&change.reason)
                    .bind(&change.document)
                    .bind(change.last_modified)
                    .bind(now_ms())
                    .execute(&mut *$tx)
                    .await;
                match saved {
                    Ok(_) => {}
                    Err(e) if is_duplicate(&e) => {
                        drop($tx);
                        let other = self
                            .pair_owner(
                                &u.account_id,
                                &change.function_name,
                                &change.qualifier,
                                &change.arn,
                                &change.queue,
                            )
                            .await?;
                        return Err(conflict(SourceKind::of(&change.arn), &change.arn, &change.function_name, &other));
                    }
                    Err(e) => return Err(db("update event source mapping")(e)),
                }
                let row = sqlx::query_as::<_, Row>(LOAD)
                    .bind(&u.uuid)
                    .bind(&u.account_id)
                    .fetch_one(&mut *$tx)
                    .await
                    .map_err(db("reload event source mapping"))?;
                $tx.commit().await.map_err(db("commit event source mapping update"))?;
                row
            }};
        }
        let row = match &self.store {
            Store::Sqlite(pool) => {
                let mut tx = pool.begin_with("begin immediate").await.map_err(db("begin transaction"))?;
                transaction!(tx, LOAD)
            }
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(db("begin transaction"))?;
                transaction!(tx, LOAD_FOR_UPDATE)
            }
        };
        self.mapping_of(row)
    }

    /// What an update makes of the stored row, or why it is refused.
    fn change(&self, u: &MappingUpdate, row: Row) -> ApiResult<Change> {
        if !matches!(row.state.as_str(), "Enabled" | "Disabled") {
            return Err(ApiError::ResourceInUse(format!(
                "The event source mapping is currently in the {} state and cannot be updated. Retry once it is \
                 Enabled or Disabled.",
                row.state
            )));
        }
        let kind = SourceKind::of(&row.event_source_arn)
            .ok_or_else(|| anyhow::anyhow!("stored event source mapping {} has an unknown source", row.uuid))?;
        let (function_name, qualifier) = match &u.function {
            Some((name, qualifier)) => (name.clone(), qualifier.clone().unwrap_or_default()),
            None => (row.function_name.clone(), row.qualifier.clone()),
        };
        let state = match (row.state.as_str(), u.enabled) {
            ("Enabled", Some(false)) => "Disabling",
            ("Disabled", Some(true)) => "Enabling",
            _ => "Updating",
        };
        let enabled = u.enabled.unwrap_or(row.enabled);
        let last_modified = now_ms().max(row.last_modified + 1);
        let arn = row.event_source_arn.clone();
        let current = self.mapping_of(row)?;
        let mut updated = validate::apply_settings(kind, &current, &u.settings)?;
        updated.state = state.to_owned();
        let queue = source_queue(&updated);
        let document = serde_json::to_string(&updated).context("encode event source mapping")?;
        Ok(Change {
            function_name,
            qualifier,
            state,
            enabled,
            reason: kind.transition_reason().to_owned(),
            document,
            last_modified,
            arn,
            queue,
        })
    }

    pub(crate) async fn delete_mapping(&self, account_id: &str, uuid: &str) -> ApiResult<EventSourceMapping> {
        const SQL: &str = "update event_source_mappings set state = 'Deleting', \
             state_transition_reason = case when event_source_arn like 'arn:aws:kinesis:%' then $3 else $4 end, \
             updated_at = $5 where uuid = $1 and account_id = $2 \
             returning uuid, account_id, function_name, qualifier, event_source_arn, state, enabled, \
             state_transition_reason, last_processing_result, document, last_modified, created_at";
        let row = on_pool!(&self.store, pool => sqlx::query_as::<_, Row>(SQL)
            .bind(uuid).bind(account_id).bind(validate::USER_ACTION).bind(validate::USER_INITIATED).bind(now_ms())
            .fetch_optional(pool).await)
        .map_err(db("delete event source mapping"))?;
        self.mapping_of(row.ok_or_else(not_found)?)
    }

    pub(crate) async fn acquire_lease(&self, key: &str, owner: &str, ttl_ms: i64) -> ApiResult<bool> {
        let now = now_ms();
        // Taken when free, expired, or already this owner's (a renewal).
        const SQL: &str = "insert into event_source_leases (lease_key, owner, expires_at, created_at, updated_at) \
             values ($1, $2, $3, $4, $4) \
             on conflict (lease_key) do update set owner = excluded.owner, expires_at = excluded.expires_at, \
             updated_at = excluded.updated_at \
             where event_source_leases.owner = excluded.owner or event_source_leases.expires_at <= excluded.updated_at \
             returning lease_key";
        let taken = on_pool!(&self.store, pool => sqlx::query_scalar::<_, String>(SQL)
            .bind(key).bind(owner).bind(now.saturating_add(ttl_ms)).bind(now)
            .fetch_optional(pool).await)
        .map_err(db("acquire lease"))?;
        Ok(taken.is_some())
    }

    pub(crate) async fn release_lease(&self, key: &str, owner: &str) -> ApiResult<()> {
        const SQL: &str = "delete from event_source_leases where lease_key = $1 and owner = $2";
        on_pool!(&self.store, pool => sqlx::query(SQL).bind(key).bind(owner).execute(pool).await.map(|r| r.rows_affected()))
            .map_err(db("release lease"))?;
        Ok(())
    }

    pub(crate) async fn get_checkpoint(&self, uuid: &str, partition: &str) -> ApiResult<Option<String>> {
        const SQL: &str = "select position from event_source_checkpoints where uuid = $1 and partition = $2";
        on_pool!(&self.store, pool => sqlx::query_scalar::<_, String>(SQL).bind(uuid).bind(partition).fetch_optional(pool).await)
            .map_err(db("read checkpoint"))
    }

    pub(crate) async fn put_checkpoint(&self, uuid: &str, partition: &str, position: &str) -> ApiResult<()> {
        // Only while the mapping exists: a poller finishing its batch after the mapping was
        // deleted must not leave a checkpoint behind.
        const SQL: &str = "insert into event_source_checkpoints (uuid, partition, position, created_at, updated_at) \
             select $1, $2, $3, $4, $4 where exists (select 1 from event_source_mappings where uuid = $1) \
             on conflict (uuid, partition) do update set position = excluded.position, updated_at = excluded.updated_at";
        on_pool!(&self.store, pool => sqlx::query(SQL).bind(uuid).bind(partition).bind(position).bind(now_ms()).execute(pool).await.map(|r| r.rows_affected()))
            .map_err(db("write checkpoint"))?;
        Ok(())
    }

    pub(crate) async fn set_processing_result(&self, uuid: &str, result: &str) -> ApiResult<()> {
        const SQL: &str =
            "update event_source_mappings set last_processing_result = $2, updated_at = $3 where uuid = $1";
        on_pool!(&self.store, pool => sqlx::query(SQL).bind(uuid).bind(result).bind(now_ms()).execute(pool).await.map(|r| r.rows_affected()))
            .map_err(db("set processing result"))?;
        Ok(())
    }

    pub(crate) async fn active_mappings(&self) -> ApiResult<Vec<MappingRecord>> {
        const SQL: &str = "select uuid, account_id, function_name, qualifier, event_source_arn, state, enabled, \
             state_transition_reason, last_processing_result, document, last_modified, created_at \
             from event_source_mappings where state <> 'Disabled' order by created_at, uuid";
        let rows = on_pool!(&self.store, pool => sqlx::query_as::<_, Row>(SQL).fetch_all(pool).await)
            .map_err(db("list active event source mappings"))?;
        rows.into_iter()
            .map(|row| {
                let (account_id, enabled) = (row.account_id.clone(), row.enabled);
                Ok(MappingRecord { account_id, enabled, mapping: self.mapping_of(row)? })
            })
            .collect()
    }

    pub(crate) async fn settle_mapping_state(&self, uuid: &str, from: &str, to: &str) -> ApiResult<bool> {
        if to != "Deleted" {
            const SQL: &str =
                "update event_source_mappings set state = $3, updated_at = $4 where uuid = $1 and state = $2";
            let changed = on_pool!(&self.store, pool => sqlx::query(SQL).bind(uuid).bind(from).bind(to).bind(now_ms()).execute(pool).await.map(|r| r.rows_affected()))
                .map_err(db("settle event source mapping"))?;
            return Ok(changed == 1);
        }
        // The row, its checkpoints and every lease naming it go together.
        let leases = format!("%{uuid}%");
        let removed = on_pool!(&self.store, pool => {
            async {
                let mut tx = pool.begin().await?;
                let n = sqlx::query("delete from event_source_mappings where uuid = $1 and state = $2")
                    .bind(uuid).bind(from).execute(&mut *tx).await?.rows_affected();
                if n == 1 {
                    sqlx::query("delete from event_source_checkpoints where uuid = $1").bind(uuid).execute(&mut *tx).await?;
                    sqlx::query("delete from event_source_leases where lease_key like $1").bind(&leases).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(n)
            }.await
        })
        .map_err(db("remove event source mapping"))?;
        Ok(removed == 1)
    }
}
