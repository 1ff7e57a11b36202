//! The rule operations on the metadata database (tables of migration 0008).

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lamina_common::names::Violations;
use lamina_common::time::now_ms;
use lamina_common::{ApiError, ApiResult};
use lamina_metadata::on_pool;

use super::validate::{self, Entry, ValidRule};
use super::{
    DEFAULT_BUS, Empty, FailedEntry, LIMIT_MESSAGE, ListRulesRequest, ListRulesResponse, ListTargetsRequest,
    ListTargetsResponse, MAX_RULES, MAX_TARGETS, PutRuleRequest, PutRuleResponse, PutTargetsRequest,
    RemoveTargetsRequest, Rule, RuleNameRequest, Scoped, Target, TargetsResponse, rule_arn,
};
use crate::EventSources;
use crate::schedule::Schedule;

/// Runs `$body` in one write transaction on either engine; `$lock` is the row-lock clause to
/// append to a `select` of a row the transaction changes (`for update` on Postgres; SQLite's
/// `begin immediate` already holds the write lock, so that reads and writes cannot interleave).
macro_rules! in_tx {
    ($store:expr, $tx:ident, $lock:ident => $body:block) => {
        match $store {
            lamina_metadata::Store::Sqlite(pool) => {
                let $lock = "";
                let mut $tx = pool.begin_with("begin immediate").await.context("begin transaction")?;
                let out = $body;
                $tx.commit().await.context("commit transaction")?;
                out
            }
            lamina_metadata::Store::Postgres(pool) => {
                let $lock = " for update";
                let mut $tx = pool.begin().await.context("begin transaction")?;
                let out = $body;
                $tx.commit().await.context("commit transaction")?;
                out
            }
        }
    };
}

/// `sql` with a lock clause appended.
fn locked(sql: &str, lock: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!("{sql}{lock}"))
}

#[derive(Debug, sqlx::FromRow)]
struct RuleRow {
    account_id: String,
    name: String,
    arn: String,
    schedule_expression: Option<String>,
    event_pattern: Option<String>,
    state: String,
    description: Option<String>,
    role_arn: Option<String>,
    event_bus_name: String,
}

impl RuleRow {
    fn into_rule(self, created_by: bool) -> Rule {
        Rule {
            created_by: created_by.then(|| self.account_id.clone()),
            name: self.name,
            arn: self.arn,
            event_pattern: self.event_pattern,
            schedule_expression: self.schedule_expression,
            state: self.state,
            description: self.description,
            role_arn: self.role_arn,
            event_bus_name: self.event_bus_name,
        }
    }
}

const RULE_COLUMNS: &str =
    "account_id, name, arn, schedule_expression, event_pattern, state, description, role_arn, event_bus_name";

/// A rule's schedule state, read before changing it.
#[derive(Debug, sqlx::FromRow)]
struct Timing {
    schedule_expression: Option<String>,
    state: String,
    next_fire_at: Option<i64>,
}

fn not_found(name: &str) -> ApiError {
    ApiError::ResourceNotFound(format!("Rule {name} does not exist on EventBus {DEFAULT_BUS}."))
}

fn limit_exceeded() -> ApiError {
    ApiError::LimitExceeded(LIMIT_MESSAGE.to_owned())
}

/// Where a rule resumes when it is enabled again: its next tick if still ahead, else the first
/// tick after now (a rule that was off does not fire for the time it was off).
fn resume(schedule: &Schedule, next: i64, now: i64) -> Option<i64> {
    if next >= now { Some(next) } else { schedule.next_after(next, now) }
}

/// The next tick a PutRule leaves a rule with: unchanged for the same expression (a re-put does not
/// move or repeat a firing), the first tick of a new or changed expression.
fn next_for_put(old: Option<&Timing>, rule: &ValidRule, now: i64) -> Option<i64> {
    let (text, schedule) = rule.schedule.as_ref()?;
    match old {
        Some(Timing { schedule_expression: Some(old_text), state, next_fire_at: Some(next) }) if old_text == text => {
            if rule.enabled && state == "DISABLED" {
                resume(schedule, *next, now)
            } else {
                Some(*next)
            }
        }
        _ => schedule.first_tick(now),
    }
}

/// Pages `items` (sorted by key) after the key a token names; the next token names the last key.
fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
    token: Option<&str>,
    limit: Option<i64>,
) -> ApiResult<(Vec<T>, Option<String>)> {
    let after = match token {
        None => None,
        Some(t) => Some(
            URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .ok_or_else(|| ApiError::ValidationMessage("The nextToken provided is invalid.".into()))?,
        ),
    };
    let limit = usize::try_from(limit.unwrap_or(100)).unwrap_or(100);
    let mut rest: Vec<T> = items.into_iter().filter(|i| after.as_deref().is_none_or(|a| key(i) > a)).collect();
    let next = if rest.len() > limit {
        rest.truncate(limit);
        rest.last().map(|last| URL_SAFE_NO_PAD.encode(key(last).as_bytes()))
    } else {
        None
    };
    Ok((rest, next))
}

fn check_name_request(r: &RuleNameRequest) -> ApiResult<String> {
    let mut v = Violations::default();
    validate::name(&mut v, r.name.as_deref(), "name");
    validate::event_bus(&mut v, r.event_bus_name.as_deref());
    v.finish()?;
    Ok(r.name.clone().unwrap_or_default())
}

impl EventSources {
    pub(crate) async fn put_rule(&self, s: Scoped<PutRuleRequest>) -> ApiResult<PutRuleResponse> {
        let account = s.account_id.as_str();
        let rule = validate::put_rule(&s.request, &self.region, account)?;
        let arn = rule_arn(&self.region, account, &rule.name);
        let now = now_ms();
        in_tx!(&self.store, tx, lock => {
            let sql = "select schedule_expression, state, next_fire_at from event_rules where account_id = $1 and name = $2";
            let old: Option<Timing> = sqlx::query_as(locked(sql, lock))
                .bind(account).bind(&rule.name)
                .fetch_optional(&mut *tx).await.context("read rule")?;
            if old.is_none() {
                let count: i64 = sqlx::query_scalar("select count(*) from event_rules where account_id = $1")
                    .bind(account)
                    .fetch_one(&mut *tx).await.context("count rules")?;
                if count >= MAX_RULES {
                    return Err(limit_exceeded());
                }
            }
            let next = next_for_put(old.as_ref(), &rule, now);
            let sql = "insert into event_rules (account_id, name, arn, schedule_expression, event_pattern, state, \
                       description, role_arn, event_bus_name, next_fire_at, created_at, updated_at) \
                       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
                       on conflict (account_id, name) do update set schedule_expression = excluded.schedule_expression, \
                       event_pattern = excluded.event_pattern, state = excluded.state, \
                       description = excluded.description, role_arn = excluded.role_arn, \
                       next_fire_at = excluded.next_fire_at, updated_at = excluded.updated_at";
            sqlx::query(sql)
                .bind(account).bind(&rule.name).bind(&arn)
                .bind(rule.schedule.as_ref().map(|(text, _)| text.as_str()))
                .bind(&rule.event_pattern)
                .bind(if rule.enabled { "ENABLED" } else { "DISABLED" })
                .bind(&rule.description).bind(&rule.role_arn).bind(DEFAULT_BUS).bind(next).bind(now)
                .execute(&mut *tx).await.context("store rule")?;
        });
        Ok(PutRuleResponse { rule_arn: arn })
    }

    pub(crate) async fn describe_rule(&self, s: Scoped<RuleNameRequest>) -> ApiResult<Rule> {
        let name = check_name_request(&s.request)?;
        validate::default_bus(s.request.event_bus_name.as_deref(), &self.region, &s.account_id)?;
        let sql =
            sqlx::AssertSqlSafe(format!("select {RULE_COLUMNS} from event_rules where account_id = $1 and name = $2"));
        let row: Option<RuleRow> = on_pool!(&self.store, pool => sqlx::query_as(sql)
            .bind(&s.account_id).bind(&name)
            .fetch_optional(pool).await)
        .context("read rule")?;
        row.map(|r| r.into_rule(true)).ok_or_else(|| not_found(&name))
    }

    pub(crate) async fn list_rules(&self, s: Scoped<ListRulesRequest>) -> ApiResult<ListRulesResponse> {
        let r = &s.request;
        let mut v = Violations::default();
        if let Some(prefix) = r.name_prefix.as_deref() {
            validate::name(&mut v, Some(prefix), "namePrefix");
        }
        validate::event_bus(&mut v, r.event_bus_name.as_deref());
        validate::limit(&mut v, r.limit);
        validate::next_token(&mut v, r.next_token.as_deref());
        v.finish()?;
        validate::default_bus(r.event_bus_name.as_deref(), &self.region, &s.account_id)?;
        // At most MAX_RULES rows: filtered and paged here, the same on both engines.
        let sql =
            sqlx::AssertSqlSafe(format!("select {RULE_COLUMNS} from event_rules where account_id = $1 order by name"));
        let rows: Vec<RuleRow> = on_pool!(&self.store, pool => sqlx::query_as(sql)
            .bind(&s.account_id)
            .fetch_all(pool).await)
        .context("list rules")?;
        let prefix = r.name_prefix.as_deref().unwrap_or_default();
        let rows: Vec<RuleRow> = rows.into_iter().filter(|row| row.name.starts_with(prefix)).collect();
        let (rows, next_token) = page(rows, |row| row.name.as_str(), r.next_token.as_deref(), r.limit)?;
        Ok(ListRulesResponse { rules: rows.into_iter().map(|row| row.into_rule(false)).collect(), next_token })
    }

    pub(crate) async fn set_rule_state(&self, s: Scoped<RuleNameRequest>, enabled: bool) -> ApiResult<Empty> {
        let name = check_name_request(&s.request)?;
        validate::default_bus(s.request.event_bus_name.as_deref(), &self.region, &s.account_id)?;
        let now = now_ms();
        in_tx!(&self.store, tx, lock => {
            let sql = "select schedule_expression, state, next_fire_at from event_rules where account_id = $1 and name = $2";
            let old: Option<Timing> = sqlx::query_as(locked(sql, lock))
                .bind(&s.account_id).bind(&name)
                .fetch_optional(&mut *tx).await.context("read rule")?;
            let old = old.ok_or_else(|| not_found(&name))?;
            let schedule = old.schedule_expression.as_deref().and_then(|e| Schedule::parse(e).ok());
            let next = match (&schedule, old.next_fire_at) {
                (Some(schedule), Some(next)) if enabled && old.state == "DISABLED" => resume(schedule, next, now),
                _ => old.next_fire_at,
            };
            let sql = "update event_rules set state = $3, next_fire_at = $4, updated_at = $5 \
                       where account_id = $1 and name = $2";
            sqlx::query(sql)
                .bind(&s.account_id).bind(&name)
                .bind(if enabled { "ENABLED" } else { "DISABLED" }).bind(next).bind(now)
                .execute(&mut *tx).await.context("update rule state")?;
        });
        Ok(Empty {})
    }

    pub(crate) async fn delete_rule(&self, s: Scoped<RuleNameRequest>) -> ApiResult<Empty> {
        let name = check_name_request(&s.request)?;
        validate::default_bus(s.request.event_bus_name.as_deref(), &self.region, &s.account_id)?;
        in_tx!(&self.store, tx, lock => {
            let sql = "select schedule_expression, state, next_fire_at from event_rules where account_id = $1 and name = $2";
            let old: Option<Timing> = sqlx::query_as(locked(sql, lock))
                .bind(&s.account_id).bind(&name)
                .fetch_optional(&mut *tx).await.context("read rule")?;
            // Deleting a rule that does not exist succeeds, as on AWS.
            if old.is_some() {
                let sql = "select count(*) from event_rule_targets where account_id = $1 and rule_name = $2";
                let targets: i64 = sqlx::query_scalar(sql)
                    .bind(&s.account_id).bind(&name)
                    .fetch_one(&mut *tx).await.context("count targets")?;
                if targets > 0 {
                    return Err(ApiError::ValidationMessage("Rule can't be deleted since it has targets.".into()));
                }
                sqlx::query("delete from event_rules where account_id = $1 and name = $2")
                    .bind(&s.account_id).bind(&name)
                    .execute(&mut *tx).await.context("delete rule")?;
            }
        });
        Ok(Empty {})
    }

    pub(crate) async fn put_targets(&self, s: Scoped<PutTargetsRequest>) -> ApiResult<TargetsResponse> {
        let account = s.account_id.as_str();
        let (rule, entries) = validate::put_targets(&s.request, &self.region, account)?;
        let now = now_ms();
        let mut failed = Vec::new();
        let mut accepted = Vec::new();
        for entry in entries {
            match entry {
                Entry::Accepted { id, arn, input } => accepted.push((id, arn, input)),
                Entry::Failed { id, code, message } => {
                    failed.push(FailedEntry { target_id: id, error_code: code.to_owned(), error_message: message })
                }
            }
        }
        in_tx!(&self.store, tx, lock => {
            let sql = "select schedule_expression, state, next_fire_at from event_rules where account_id = $1 and name = $2";
            let found: Option<Timing> = sqlx::query_as(locked(sql, lock))
                .bind(account).bind(&rule)
                .fetch_optional(&mut *tx).await.context("read rule")?;
            let Some(found) = found else {
                return Err(not_found(&rule));
            };
            let sql = "select target_id from event_rule_targets where account_id = $1 and rule_name = $2";
            let mut ids: Vec<String> = sqlx::query_scalar(sql)
                .bind(account).bind(&rule)
                .fetch_all(&mut *tx).await.context("read targets")?;
            let had_targets = !ids.is_empty();
            ids.extend(accepted.iter().map(|(id, _, _)| id.clone()));
            ids.sort_unstable();
            ids.dedup();
            if ids.len() > MAX_TARGETS {
                return Err(limit_exceeded());
            }
            for (id, arn, input) in &accepted {
                let sql = "insert into event_rule_targets (account_id, rule_name, target_id, arn, input, created_at, updated_at) \
                           values ($1, $2, $3, $4, $5, $6, $6) on conflict (account_id, rule_name, target_id) \
                           do update set arn = excluded.arn, input = excluded.input, updated_at = excluded.updated_at";
                sqlx::query(sql)
                    .bind(account).bind(&rule).bind(id).bind(arn).bind(input).bind(now)
                    .execute(&mut *tx).await.context("store target")?;
            }
            // A rate rule's first firing is immediate (the guide), and with the CLI's put-rule
            // then put-targets that means once it has somewhere to go: its period starts now.
            let rate = found.schedule_expression.as_deref().map(Schedule::parse);
            if !had_targets && !accepted.is_empty() && matches!(rate, Some(Ok(Schedule::Rate { .. }))) {
                sqlx::query("update event_rules set next_fire_at = $3 where account_id = $1 and name = $2")
                    .bind(account).bind(&rule).bind(now)
                    .execute(&mut *tx).await.context("start rate schedule")?;
            }
        });
        Ok(TargetsResponse { failed_entry_count: failed.len() as i64, failed_entries: failed })
    }

    pub(crate) async fn remove_targets(&self, s: Scoped<RemoveTargetsRequest>) -> ApiResult<TargetsResponse> {
        let r = &s.request;
        validate::remove_targets(r.rule.as_deref(), r.event_bus_name.as_deref(), r.ids.as_deref())?;
        validate::default_bus(r.event_bus_name.as_deref(), &self.region, &s.account_id)?;
        let rule = r.rule.clone().unwrap_or_default();
        in_tx!(&self.store, tx, lock => {
            let sql = "select schedule_expression, state, next_fire_at from event_rules where account_id = $1 and name = $2";
            let found: Option<Timing> = sqlx::query_as(locked(sql, lock))
                .bind(&s.account_id).bind(&rule)
                .fetch_optional(&mut *tx).await.context("read rule")?;
            if found.is_none() {
                return Err(not_found(&rule));
            }
            // Ids the rule does not have are removed already: not a failure.
            for id in r.ids.as_deref().unwrap_or_default() {
                sqlx::query("delete from event_rule_targets where account_id = $1 and rule_name = $2 and target_id = $3")
                    .bind(&s.account_id).bind(&rule).bind(id)
                    .execute(&mut *tx).await.context("delete target")?;
            }
        });
        Ok(TargetsResponse::default())
    }

    pub(crate) async fn list_targets(&self, s: Scoped<ListTargetsRequest>) -> ApiResult<ListTargetsResponse> {
        let r = &s.request;
        let mut v = Violations::default();
        validate::name(&mut v, r.rule.as_deref(), "rule");
        validate::event_bus(&mut v, r.event_bus_name.as_deref());
        validate::limit(&mut v, r.limit);
        validate::next_token(&mut v, r.next_token.as_deref());
        v.finish()?;
        validate::default_bus(r.event_bus_name.as_deref(), &self.region, &s.account_id)?;
        let rule = r.rule.clone().unwrap_or_default();
        let exists: i64 = on_pool!(&self.store, pool => sqlx::query_scalar(
                "select count(*) from event_rules where account_id = $1 and name = $2")
            .bind(&s.account_id).bind(&rule)
            .fetch_one(pool).await)
        .context("read rule")?;
        if exists == 0 {
            return Err(not_found(&rule));
        }
        let sql = "select target_id, arn, input from event_rule_targets where account_id = $1 and rule_name = $2 \
                   order by target_id";
        let rows: Vec<(String, String, Option<String>)> = on_pool!(&self.store, pool => sqlx::query_as(sql)
            .bind(&s.account_id).bind(&rule)
            .fetch_all(pool).await)
        .context("list targets")?;
        let (rows, next_token) = page(rows, |(id, _, _)| id.as_str(), r.next_token.as_deref(), r.limit)?;
        let targets = rows
            .into_iter()
            .map(|(id, arn, input)| Target { id: Some(id), arn: Some(arn), input, ..Default::default() })
            .collect();
        Ok(ListTargetsResponse { targets, next_token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_last_key() {
        let items: Vec<String> = (0..5).map(|i| format!("r{i}")).collect();
        let (first, token) = page(items.clone(), |s| s.as_str(), None, Some(2)).expect("page");
        assert_eq!(first, ["r0", "r1"]);
        let (second, token) = page(items.clone(), |s| s.as_str(), token.as_deref(), Some(2)).expect("page");
        assert_eq!(second, ["r2", "r3"]);
        let (third, token) = page(items.clone(), |s| s.as_str(), token.as_deref(), Some(2)).expect("page");
        assert_eq!((third.as_slice(), token), (["r4".to_owned()].as_slice(), None));
        assert!(page(items, |s| s.as_str(), Some("***"), None).is_err());
    }
}
